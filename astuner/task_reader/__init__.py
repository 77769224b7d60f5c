"""Task readers: every source becomes a list of ``Task``s.

``build_task_reader`` picks the reader named by ``task_reader.type``.
"""

from __future__ import annotations

from typing import Protocol

from astuner.config.schema import TaskReaderConfig
from astuner.task_reader.arithmetic import ArithmeticTaskReader
from astuner.task_reader.dataset_file import DatasetFileReader
from astuner.task_reader.env_service import EnvServiceReader
from astuner.task_reader.hf_dataset import HuggingfaceDatRepoReader
from astuner.task_reader.rows import RowFields, TaskReaderError
from astuner.task_reader.task import Task


class TaskReader(Protocol):
    """What every reader offers."""

    def get_training_tasks(self) -> list[Task]: ...

    def get_validation_tasks(self) -> list[Task]: ...


def has_validation(cfg: TaskReaderConfig) -> bool:
    """Whether ``cfg`` names validation tasks (decided from the config alone, before any reading).

    Why from the config: a backbone's plan (verl's test_freq, Trinity's eval taskset) depends on it
    and must be the same in the dry run; ``check_validation`` then holds the reader to it.
    """
    if cfg.type == "huggingface_dat_repo":
        return cfg.huggingface_dat_repo.validation_split is not None
    if cfg.type == "dataset_file":
        return cfg.dataset_file.validation_path is not None
    if cfg.type == "arithmetic":
        return cfg.arithmetic.num_validation > 0
    return cfg.env_service.validation_split is not None


def validation_key(cfg: TaskReaderConfig) -> str:
    """The key that names the validation tasks of ``cfg.type`` (for messages)."""
    leaf = {
        "huggingface_dat_repo": "validation_split",
        "dataset_file": "validation_path",
        "arithmetic": "num_validation",
        "env_service": "validation_split",
    }[cfg.type]
    return f"astuner.task_reader.{cfg.type}.{leaf}"


def check_validation(cfg: TaskReaderConfig, validation: list[Task]) -> None:
    """Raise when the config names validation tasks but the reader found none (never a silent change of plan)."""
    if has_validation(cfg) and not validation:
        key = validation_key(cfg)
        raise TaskReaderError(
            f"{key} names validation tasks but none were read; fix the source or set {key} to "
            f"{'0' if cfg.type == 'arithmetic' else 'null'} to train without validation"
        )


def build_task_reader(cfg: TaskReaderConfig) -> TaskReader:
    """The reader for ``cfg.type`` (paths in ``cfg`` are already absolute, see ``astuner.config``;
    ``env_service.env_url`` is resolved, see ``astuner.backbone.run_backbone``)."""
    fields = RowFields(query=cfg.query_field, answer=cfg.answer_field, task_id=cfg.task_id_field)
    if cfg.type == "huggingface_dat_repo":
        hf = cfg.huggingface_dat_repo
        assert hf.dataset_path is not None, "validated by astuner.config"
        return HuggingfaceDatRepoReader(
            hf.dataset_path, hf.dataset_config, hf.training_split, hf.validation_split, fields
        )
    if cfg.type == "dataset_file":
        df = cfg.dataset_file
        assert df.training_path is not None, "validated by astuner.config"
        return DatasetFileReader(df.training_path, df.validation_path, fields)
    if cfg.type == "arithmetic":
        a = cfg.arithmetic
        return ArithmeticTaskReader(a.num_train, a.num_validation, a.seed, a.difficulty)
    if cfg.type == "env_service":
        from astuner.env_service import client_from_config

        es = cfg.env_service
        return EnvServiceReader(client_from_config(es), es.training_split, es.validation_split)
    raise TaskReaderError(f"astuner.task_reader.type = {cfg.type!r} has no reader")


__all__ = [
    "Task",
    "TaskReader",
    "TaskReaderError",
    "RowFields",
    "build_task_reader",
    "check_validation",
    "has_validation",
]
