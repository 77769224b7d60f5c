"""astuner tasks as verl dataset rows (parquet files that verl's ``RLHFDataset`` reads).

Why these columns: ``RLHFDataset.__getitem__`` (verl 0.9.1, ``verl/utils/dataset/rl_dataset.py``)
turns ``prompt`` into ``raw_prompt``, reads ``extra_info.index``, and hands every other column to
the agent loop's ``run(**kwargs)``. The whole ``Task`` travels as JSON in ``extra_info.astuner_task``
(JSON, because task metadata is free-form and parquet needs one schema per column), so the adapter
rebuilds exactly the task the reader produced; ``reward_model.ground_truth`` is there for verl's
own tools (its reward loop is not used: the adapter returns the judged reward).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astuner.backbone.spec import task_from_json, task_messages, task_to_json
from astuner.task_reader.task import Task

DATA_SOURCE = "astuner"


def task_rows(tasks: Sequence[Task], split: str, agent_name: str) -> list[dict[str, Any]]:
    """One verl row per task; ``extra_info.index`` is the task's position (verl's group key for traces)."""
    return [
        {
            "data_source": DATA_SOURCE,
            "prompt": task_messages(task),
            "agent_name": agent_name,
            "reward_model": {"style": "astuner", "ground_truth": str(task.metadata.get("ground_truth", ""))},
            "extra_info": {
                "index": i,
                "split": split,
                "task_id": task.task_id,
                "astuner_task": task_to_json(task),
            },
        }
        for i, task in enumerate(tasks)
    ]


def task_from_extra_info(extra_info: dict[str, Any]) -> Task:
    """The ``Task`` a row was made from (inverse of ``task_rows``)."""
    return task_from_json(extra_info["astuner_task"])


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write rows as parquet (pyarrow infers the nested schema); returns ``path``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path
