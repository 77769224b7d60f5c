"""Model paths: embedded default, local folders, hub ids without network."""

from __future__ import annotations

import time

import pytest

from astuner.hub import hub_reachable
from astuner.model import EmbeddedModelError, ModelPathError, resolve_model_path
from astuner.model.embedded import lookup


def test_builtin_model_is_a_normal_hf_folder(smollm2_dir):
    assert resolve_model_path("builtin:smollm2-135m") == smollm2_dir
    names = {p.name for p in smollm2_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not any(n.startswith(".") and "tmp" in n for n in names)


def test_unknown_builtin():
    with pytest.raises(EmbeddedModelError, match="available: builtin:smollm2-135m"):
        lookup("gpt-17")


def test_local_folder_without_config(tmp_path):
    with pytest.raises(ModelPathError, match="no config.json"):
        resolve_model_path(str(tmp_path))


def test_hub_id_without_network_fails_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    if hub_reachable():
        pytest.skip("this machine reaches the Hugging Face Hub; the offline path cannot be exercised")
    start = time.monotonic()
    with pytest.raises(ModelPathError, match="cannot be reached.*builtin:smollm2-135m"):
        resolve_model_path("Qwen/Qwen2.5-0.5B-Instruct")
    assert time.monotonic() - start < 10
