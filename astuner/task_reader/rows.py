"""Map a dataset row to a ``Task``: shared by the file and Hugging Face readers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from astuner.task_reader.task import Task


class TaskReaderError(ValueError):
    """Tasks cannot be read; the one-line message names the source, the key and the fix."""


@dataclass(frozen=True)
class RowFields:
    """Which row fields feed a Task (``task_reader.query_field`` etc.)."""

    query: str = "question"
    answer: str | None = "answer"
    task_id: str | None = None


def ground_truth_of(answer: Any) -> str:
    """The reference answer: for GSM8K-style solutions the text after the last ``####``, commas removed."""
    text = str(answer)
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    return text.strip()


def rows_to_tasks(rows: Iterable[dict[str, Any]], fields: RowFields, split: str, where: str) -> Iterator[Task]:
    """Yield one Task per row.

    Args:
        rows: dict rows in order.
        fields: the field mapping.
        split: split name, used in default task ids (``train-17``).
        where: the source, for error messages (a file path or a dataset id).

    Raises:
        TaskReaderError: a row lacks the query (or answer) field.
    """
    for index, row in enumerate(rows):
        if fields.query not in row:
            raise TaskReaderError(
                f"{where}: row {index} has no field '{fields.query}' (astuner.task_reader.query_field); "
                f"its fields are {sorted(row)}"
            )
        metadata = dict(row)
        if fields.answer is not None:
            if fields.answer not in row:
                raise TaskReaderError(
                    f"{where}: row {index} has no field '{fields.answer}' (astuner.task_reader.answer_field; "
                    f"null for none); its fields are {sorted(row)}"
                )
            metadata["ground_truth"] = ground_truth_of(row[fields.answer])
        if fields.task_id is not None and fields.task_id not in row:
            raise TaskReaderError(
                f"{where}: row {index} has no field '{fields.task_id}' (astuner.task_reader.task_id_field)"
            )
        task_id = str(row[fields.task_id]) if fields.task_id is not None else f"{split}-{index}"
        yield Task(task_id=task_id, main_query=str(row[fields.query]), metadata=metadata)
