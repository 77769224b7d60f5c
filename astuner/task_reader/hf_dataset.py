"""Tasks from a Hugging Face dataset (``task_reader.type: huggingface_dat_repo``).

``dataset_path`` is a hub id or a local folder/file:
- ``openai/gsm8k`` (+ ``dataset_config: main``): repo ``openai/gsm8k``;
- ``gsm8k/main`` (the seed's form): first tried as repo ``gsm8k/main``; if the hub has no such
  dataset, as repo ``gsm8k`` with config ``main``; ``owner/name/config`` is always repo + config;
- a local folder (e.g. ``train.jsonl`` + ``test.jsonl``, or a downloaded repo) or a single file.

Without network a hub id fails at once with a message naming the local-path alternative: we probe
the hub endpoint (3 s) instead of letting ``datasets`` retry for ~25 s. With ``HF_HUB_OFFLINE=1``
the local Hugging Face cache is used as ``datasets`` does.
"""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from astuner.hub import hub_reachable, offline_mode
from astuner.task_reader.rows import RowFields, TaskReaderError, rows_to_tasks
from astuner.task_reader.task import Task

KEY = "astuner.task_reader.huggingface_dat_repo.dataset_path"
_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def split_hub_id(dataset_path: str, dataset_config: str | None) -> list[tuple[str, str | None]]:
    """Candidate (repo, config) pairs for a hub id, in the order they are tried."""
    parts = dataset_path.strip("/").split("/")
    if len(parts) == 3:
        return [("/".join(parts[:2]), dataset_config or parts[2])]
    if len(parts) == 2 and dataset_config is None:
        return [(dataset_path, None), (parts[0], parts[1])]
    return [(dataset_path, dataset_config)]


class HuggingfaceDatRepoReader:
    """Reads the training and validation splits of a Hugging Face dataset.

    Args:
        dataset_path: hub id or absolute local path (the config loader makes local paths absolute).
        dataset_config: config (subset) name or None.
        training_split / validation_split: split names (validation may be None).
        fields: which row fields feed the Task.
    """

    def __init__(
        self,
        dataset_path: str,
        dataset_config: str | None,
        training_split: str,
        validation_split: str | None,
        fields: RowFields,
    ):
        self.dataset_path = dataset_path
        self.dataset_config = dataset_config
        self.training_split = training_split
        self.validation_split = validation_split
        self.fields = fields

    def get_training_tasks(self) -> list[Task]:
        return self._tasks(self.training_split, "training_split")

    def get_validation_tasks(self) -> list[Task]:
        return [] if self.validation_split is None else self._tasks(self.validation_split, "validation_split")

    def _tasks(self, split: str, split_key: str) -> list[Task]:
        rows = self._load(split, split_key)
        return list(rows_to_tasks(rows, self.fields, split, f"{self.dataset_path} [{split}]"))

    def _load(self, split: str, split_key: str):
        import datasets

        local = Path(self.dataset_path)
        if local.is_absolute() and local.exists():
            return self._load_local(local, split, split_key)
        if not offline_mode() and not hub_reachable():
            raise TaskReaderError(
                f"{KEY} = '{self.dataset_path}': the Hugging Face Hub cannot be reached from this machine; download "
                "the dataset elsewhere and set dataset_path to its local folder or file (or use "
                "task_reader.type: dataset_file), or set HF_HUB_OFFLINE=1 to use your Hugging Face cache"
            )
        last_error: Exception | None = None
        for repo, config in split_hub_id(self.dataset_path, self.dataset_config):
            try:
                logger.info(f"loading dataset {repo}" + (f" (config {config})" if config else "") + f" split {split}")
                return datasets.load_dataset(repo, name=config, split=split)
            except datasets.exceptions.DatasetNotFoundError as exc:
                last_error = exc
            except (ValueError, FileNotFoundError, ConnectionError) as exc:
                raise TaskReaderError(self._explain(exc, split, split_key)) from None
        raise TaskReaderError(f"{KEY} = '{self.dataset_path}': no such dataset on the hub ({last_error})")

    def _load_local(self, path: Path, split: str, split_key: str):
        import datasets

        try:
            if path.is_file():
                builder = _FILE_BUILDERS.get(path.suffix)
                if builder is None:
                    raise TaskReaderError(f"{KEY} = '{path}': unsupported file type; use {', '.join(_FILE_BUILDERS)}")
                if split != "train":
                    raise TaskReaderError(
                        f"astuner.task_reader.huggingface_dat_repo.{split_key} = '{split}': the single file {path} "
                        "has only split 'train'; point dataset_path to a folder with one file per split, or use "
                        "task_reader.type: dataset_file with training_path / validation_path"
                    )
                return datasets.load_dataset(builder, data_files={"train": str(path)}, split="train")
            return datasets.load_dataset(str(path), name=self.dataset_config, split=split)
        except (ValueError, FileNotFoundError) as exc:
            if isinstance(exc, TaskReaderError):
                raise
            raise TaskReaderError(self._explain(exc, split, split_key)) from None

    def _explain(self, exc: Exception, split: str, split_key: str) -> str:
        text = " ".join(str(exc).split())
        if "split" in text.lower() and split in text:
            return f"astuner.task_reader.huggingface_dat_repo.{split_key} = '{split}': {text}"
        return f"{KEY} = '{self.dataset_path}': {type(exc).__name__}: {text}"
