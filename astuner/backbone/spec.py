"""What a backbone's workers need to rebuild astuner's rollout objects (no backbone import here).

Both adapters (verl's agent loop, Trinity's workflow) run inside the backbone's own Ray workers,
far from the CLI process. The launcher writes a ``RunSpec`` as JSON into the records and hands its
path to the adapter through the backbone's own configuration (a constructor keyword for verl, a
``workflow_args`` entry for Trinity); ``load_spec`` rebuilds the validated config once per worker.
The spec is derived from the one loaded config at plan time and bound to the running run's values
(``RunSpec.bind``) just before it is written, so the workers see what the CLI process sees.
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
from astuner.config.view import ComposedConfig
from astuner.rollout.runner import Episode, RolloutRunner
from astuner.task_reader.task import Task


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What a backbone's workers rebuild astuner's rollout from.

    Attributes:
        config: the whole composed config (``astuner`` validated, paths absolute, plus every other
            top-level section: the user's own, verl's, ``trinity``), derived from the loaded config.
        yaml_dir / cwd: where class references (``module->Class``, ``file.py->Class``) resolve.
        trajectories_dir: where episodes are recorded.
    """

    config: dict[str, Any]
    yaml_dir: str
    cwd: str
    trajectories_dir: str

    @classmethod
    def of(cls, loaded: LoadedConfig, records_dir: Path) -> RunSpec:
        """The spec of a run: its config, where references resolve, its records' trajectories."""
        return cls(
            config=loaded.tree,
            yaml_dir=str(loaded.yaml_path.parent),
            cwd=str(loaded.cwd),
            trajectories_dir=str(records_dir / "trajectories"),
        )

    def bind(self, loaded: LoadedConfig) -> RunSpec:
        """The same spec with the config of the running run (values only a running process knows,
        such as the env server's resolved URL)."""
        return dataclasses.replace(self, config=loaded.tree)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, default=str)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    def astuner_config(self, origin: str) -> AstunerConfig:
        """The typed, frozen ``astuner:`` tree (validated again: the file may have been edited)."""
        from astuner.config.schema import freeze
        from astuner.config.validate import validate_astuner_tree

        return freeze(validate_astuner_tree(self.config.get("astuner"), lambda _key: origin))

    def composed(self, cfg: AstunerConfig) -> ComposedConfig:
        """The read-only view of the whole config that workflows and judges get."""
        return ComposedConfig(cfg, {k: v for k, v in self.config.items() if k != "astuner"})


@functools.lru_cache(maxsize=4)
def load_spec(path: str) -> tuple[RunSpec, AstunerConfig]:
    """The spec at ``path`` and its validated config (once per worker process)."""
    spec = RunSpec(**json.loads(Path(path).read_text(encoding="utf-8")))
    return spec, spec.astuner_config(path)


_WORKER_RUNNERS: dict[str, RolloutRunner] = {}


def worker_runner(spec_path: str, tokenizer: Any) -> RolloutRunner:
    """The rollout runner of this worker process, built once (workflow class, judge, chat renderer,
    settings, the whole config as ``model_tuner.config``); each episode binds its own engine and
    env-service client to it (``RolloutRunner.bind``) and closes the client afterwards.

    Why once: a worker runs thousands of episodes; importing the workflow class, building the judge
    and the chat renderer for each was most of an adapter's overhead.
    """
    runner = _WORKER_RUNNERS.get(spec_path)
    if runner is None:
        from astuner.rollout.build import build_runner

        spec, cfg = load_spec(spec_path)
        runner = build_runner(
            cfg, None, tokenizer, Path(spec.yaml_dir), Path(spec.cwd), spec.composed(cfg), with_env=False
        )
        _WORKER_RUNNERS[spec_path] = runner
    return runner


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
