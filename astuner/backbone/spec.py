"""What a backbone's workers need to rebuild astuner's rollout objects (no backbone import here).

Both adapters (verl's agent loop, Trinity's workflow) run inside the backbone's own Ray workers,
far from the CLI process. The launcher writes a ``RunSpec`` as JSON into the records and hands its
path to the adapter through the backbone's own configuration (a constructor keyword for verl, a
``workflow_args`` entry for Trinity); ``load_spec`` rebuilds the validated config once per worker.
``record_episode`` is how every adapter writes episodes into the records.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Any

from astuner.config.load import LoadedConfig
from astuner.config.schema import AstunerConfig
from astuner.rollout.runner import Episode
from astuner.task_reader.task import Task


@dataclasses.dataclass
class RunSpec:
    """Attributes:
    astuner: the validated ``astuner:`` tree (paths already absolute).
    yaml_dir / cwd: where class references (``module->Class``, ``file.py->Class``) resolve.
    trajectories_dir: where episodes are recorded.
    """

    astuner: dict[str, Any]
    yaml_dir: str
    cwd: str
    trajectories_dir: str

    @classmethod
    def of(cls, loaded: LoadedConfig, records_dir: Path) -> RunSpec:
        """The spec of a run: its validated config, where references resolve, its records' trajectories."""
        return cls(
            astuner=loaded.tree["astuner"],
            yaml_dir=str(loaded.yaml_path.parent),
            cwd=str(Path.cwd()),
            trajectories_dir=str(records_dir / "trajectories"),
        )

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1, default=str), encoding="utf-8")
        return path

    def config(self, origin: str) -> AstunerConfig:
        from astuner.config.validate import validate_astuner_tree

        return validate_astuner_tree(self.astuner, lambda _key: origin)


@functools.lru_cache(maxsize=4)
def load_spec(path: str) -> tuple[RunSpec, AstunerConfig]:
    """The spec at ``path`` and its validated config (once per worker process)."""
    spec = RunSpec(**json.loads(Path(path).read_text(encoding="utf-8")))
    return spec, spec.config(path)


def task_to_json(task: Task) -> str:
    """The whole ``Task`` as JSON (free-form metadata included), for a backbone's dataset rows."""
    return json.dumps(dataclasses.asdict(task), default=str)


def task_from_json(text: str) -> Task:
    """The ``Task`` a row was made from (inverse of ``task_to_json``)."""
    return Task(**json.loads(text))


def task_messages(task: Task) -> list[dict[str, Any]]:
    """The chat that opens the episode: the task's own messages, else its query as one user turn."""
    return list(task.init_messages) or [{"role": "user", "content": task.main_query}]


def record_episode(trajectories_dir: Path, prefix: str, step: int, episode: Episode) -> None:
    """Append the episode to ``trajectories/<prefix>_step_<N>.<pid>.jsonl`` (one file per worker process: no locks)."""
    trajectories_dir.mkdir(parents=True, exist_ok=True)
    path = trajectories_dir / f"{prefix}_step_{step:06d}.{os.getpid()}.jsonl"
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(episode.to_dict(), ensure_ascii=False) + "\n")
