"""The embedded model's tokenizer alone: no weights, the same files as the converted model folder."""

from __future__ import annotations

import filecmp

from astuner.model.embedded import materialize_tokenizer


def test_tokenizer_alone_is_built_without_weights_and_equals_the_models(tmp_path, monkeypatch, smollm2_dir):
    monkeypatch.setenv("ASTUNER_CACHE", str(tmp_path / "cache"))  # a fresh cache: nothing converted yet
    folder = materialize_tokenizer("smollm2-135m")
    assert folder == tmp_path / "cache" / "tokenizers" / "smollm2-135m"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["chat_template.jinja", "tokenizer.json", "tokenizer_config.json"]  # no config, no weights
    for name in names:  # byte for byte what the model conversion writes
        assert filecmp.cmp(folder / name, smollm2_dir / name, shallow=False), name
    assert materialize_tokenizer("smollm2-135m") == folder  # built once
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]


def test_a_converted_model_folder_is_used_as_the_tokenizer(smollm2_dir, monkeypatch):
    monkeypatch.setenv("ASTUNER_CACHE", str(smollm2_dir.parent.parent))
    assert materialize_tokenizer("smollm2-135m") == smollm2_dir
