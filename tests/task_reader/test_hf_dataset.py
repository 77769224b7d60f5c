"""The Hugging Face reader on local folders/files, and its offline behaviour for hub ids."""

from __future__ import annotations

import shutil
import time

import pytest

from astuner.hub import hub_reachable
from astuner.task_reader import RowFields, TaskReaderError
from astuner.task_reader.hf_dataset import HuggingfaceDatRepoReader, split_hub_id


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_home" / "datasets"))


def test_local_folder_with_split_files(gsm8k_dir, hf_home, tmp_path):
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    shutil.copy(gsm8k_dir / "train.jsonl", folder / "train.jsonl")
    shutil.copy(gsm8k_dir / "test.jsonl", folder / "test.jsonl")
    reader = HuggingfaceDatRepoReader(str(folder), None, "train", "test", RowFields())
    train, val = reader.get_training_tasks(), reader.get_validation_tasks()
    assert (len(train), len(val)) == (7473, 1319)
    assert train[0].metadata["ground_truth"] == "72" and val[0].task_id == "test-0"


def test_local_single_file_has_only_train(gsm8k_dir, hf_home):
    reader = HuggingfaceDatRepoReader(str(gsm8k_dir / "test.jsonl"), None, "train", "test", RowFields())
    assert len(reader.get_training_tasks()) == 1319
    with pytest.raises(TaskReaderError, match="validation_split = 'test': the single file .* has only split 'train'"):
        reader.get_validation_tasks()


def test_unknown_split_names_the_key(gsm8k_dir, hf_home, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    shutil.copy(gsm8k_dir / "test.jsonl", folder / "test.jsonl")
    reader = HuggingfaceDatRepoReader(str(folder), None, "test", "validation", RowFields())
    with pytest.raises(TaskReaderError, match=r"validation_split = 'validation'"):
        reader.get_validation_tasks()


def test_hub_id_forms():
    assert split_hub_id("openai/gsm8k", "main") == [("openai/gsm8k", "main")]
    assert split_hub_id("gsm8k/main", None) == [("gsm8k/main", None), ("gsm8k", "main")]
    assert split_hub_id("openai/gsm8k/main", None) == [("openai/gsm8k", "main")]
    assert split_hub_id("gsm8k", None) == [("gsm8k", None)]


def test_hub_id_without_network_fails_at_once_naming_the_local_alternative(hf_home, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    if hub_reachable():
        pytest.skip("this machine reaches the Hugging Face Hub; the offline path cannot be exercised")
    reader = HuggingfaceDatRepoReader("gsm8k/main", None, "train", "test", RowFields())
    start = time.monotonic()
    with pytest.raises(TaskReaderError) as e:
        reader.get_training_tasks()
    assert time.monotonic() - start < 10  # no 25 s retry loop
    msg = str(e.value)
    assert "dataset_path = 'gsm8k/main'" in msg and "cannot be reached" in msg and "local folder or file" in msg
