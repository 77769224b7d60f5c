"""Tasks from local .jsonl / .parquet files (``task_reader.type: dataset_file``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from astuner.task_reader.rows import RowFields, TaskReaderError, rows_to_tasks
from astuner.task_reader.task import Task


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl/.json or .parquet file.

    Raises:
        TaskReaderError: unreadable file, bad JSON (with its line number) or a row that is not an object.
    """
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise TaskReaderError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskReaderError(f"{path}: cannot be read ({exc})") from None
    if path.suffix == ".json" and text.lstrip().startswith("["):
        rows = _loads(text, path, 1)
        if not isinstance(rows, list):
            raise TaskReaderError(f"{path}: a .json file must hold a list of objects")
    else:
        rows = [_loads(line, path, n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TaskReaderError(f"{path}: row {n} is {type(row).__name__}, expected a JSON object")
    return rows


def _loads(text: str, path: Path, line: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskReaderError(f"{path}:{line + exc.lineno - 1}: invalid JSON ({exc.msg})") from None


class DatasetFileReader:
    """Reads training and validation tasks from one file each.

    Args:
        training_path: absolute path of the training file.
        validation_path: absolute path of the validation file, or None.
        fields: which row fields feed the Task.
    """

    def __init__(self, training_path: str, validation_path: str | None, fields: RowFields):
        self.training_path = Path(training_path)
        self.validation_path = Path(validation_path) if validation_path else None
        self.fields = fields

    def _tasks(self, path: Path, split: str) -> Iterator[Task]:
        return rows_to_tasks(read_rows(path), self.fields, split, str(path))

    def get_training_tasks(self) -> list[Task]:
        return list(self._tasks(self.training_path, "train"))

    def get_validation_tasks(self) -> list[Task]:
        return [] if self.validation_path is None else list(self._tasks(self.validation_path, "validation"))
