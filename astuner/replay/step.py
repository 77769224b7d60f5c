"""Re-run a recorded step's episodes (workflow + judge) on their recorded LLM replies, no engine.

``replay_step(loaded, path)`` reads ``trajectories/step_<N>.jsonl`` (or ``val_step_<N>.jsonl``),
finds each episode's task again through the configured task reader, runs the workflow one episode
at a time (breakpoint friendly) against a ``ReplayEngine`` and compares every episode with its
record: status, reward, success, madness and the training samples token for token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astuner.config.load import LoadedConfig
from astuner.records.trajectories import read_step
from astuner.replay.engine import ReplayEngine
from astuner.rollout.runner import Episode, RolloutRunner
from astuner.task_reader.task import Task

_STEP_FILE = re.compile(r"^(?:(\w+)_)?step_(\d+)\.jsonl$")


class ReplayError(ValueError):
    """The recording cannot be replayed with this config (bad file, tasks not found, env service)."""


@dataclass
class ReplayedEpisode:
    episode_id: str
    recorded: dict[str, Any]
    replayed: Episode
    differences: list[str] = field(default_factory=list)


@dataclass
class ReplayReport:
    """What a replay found; ``identical`` when every episode came out as recorded."""

    path: Path
    step: int
    episodes: list[ReplayedEpisode]

    @property
    def identical(self) -> bool:
        return all(not e.differences for e in self.episodes)

    def lines(self) -> list[str]:
        same = sum(not e.differences for e in self.episodes)
        out = [f"replayed {len(self.episodes)} episode(s) of {self.path.name}: {same} identical to the recording"]
        for e in self.episodes:
            out += [f"  {e.episode_id}: {d}" for d in e.differences]
        return out


def _compare(recorded: dict[str, Any], replayed: Episode) -> list[str]:
    diffs = []
    if replayed.status != recorded["status"]:
        error = (replayed.error or "").strip().splitlines()[-1:] or [""]
        diffs.append(f"status {replayed.status} (recorded {recorded['status']}){': ' + error[0] if error[0] else ''}")
    for key in ("reward", "is_success", "madness", "turn_limit_reached", "context_overflow"):
        if getattr(replayed, key) != recorded.get(key):
            diffs.append(f"{key} {getattr(replayed, key)!r} (recorded {recorded.get(key)!r})")
    samples = [s.to_dict() for s in replayed.samples]
    if samples != recorded.get("samples", []):
        diffs.append(f"samples differ ({len(samples)} replayed, {len(recorded.get('samples', []))} recorded)")
    return diffs


def _tasks(loaded: LoadedConfig, recorded: list[dict[str, Any]]) -> list[Task]:
    from astuner.task_reader import build_task_reader

    tr = loaded.astuner.task_reader
    if tr.type == "env_service":
        raise ReplayError("replay does not support task_reader.type env_service yet (episodes need the env server)")
    reader = build_task_reader(tr)
    by_id = {t.task_id: t for t in [*reader.get_validation_tasks(), *reader.get_training_tasks()]}
    wanted = list(dict.fromkeys(e["task_id"] for e in recorded))
    missing = [t for t in wanted if t not in by_id]
    if missing:
        raise ReplayError(
            f"tasks {', '.join(missing[:3])} of the recording are not among the configured task reader's tasks; "
            "replay with the config of the run that recorded it (launcher_record/<exp>/config.yaml)"
        )
    return [by_id[t] for t in wanted]


def _tokenizer(loaded: LoadedConfig, path: Path) -> Any:
    """The run's saved tokenizer (``<exp>/tokenizer``) when the file sits in its records, else the model's."""
    from astuner.rollout.build import load_tokenizer

    saved = path.resolve().parent.parent / "tokenizer"
    if saved.is_dir():
        return load_tokenizer(saved)
    from astuner.model import resolve_model_path

    return load_tokenizer(resolve_model_path(loaded.astuner.model.path or ""))


def replay_step(loaded: LoadedConfig, path: Path, tokenizer: Any = None) -> ReplayReport:
    """Replay the step recorded in ``path`` with the workflow and judge of ``loaded``.

    Raises:
        ReplayError: a file that is not a step record, or tasks the config's reader does not produce.

    Example:
        >>> path = Path("launcher_record/exp/trajectories/step_000003.jsonl")  # doctest: +SKIP
        >>> report = replay_step(load_config("exp.yaml"), path)  # doctest: +SKIP
        >>> assert report.identical, "\\n".join(report.lines())  # doctest: +SKIP
    """
    from astuner.rollout.build import build_runner

    match = _STEP_FILE.match(path.name)
    if not path.is_file() or match is None:
        raise ReplayError(f"{path}: not a step record (expected launcher_record/<exp>/trajectories/step_<N>.jsonl)")
    step = int(match.group(2))
    recorded = read_step(path)
    tasks = _tasks(loaded, recorded)
    by_task = {t.task_id: t for t in tasks}
    calls = {RolloutRunner.episode_id(by_task[e["task_id"]], e["repeat_index"], step): e["calls"] for e in recorded}
    tokenizer = tokenizer if tokenizer is not None else _tokenizer(loaded, path)
    cfg = loaded.astuner
    engine = ReplayEngine(calls, tokenizer)
    runner = build_runner(
        cfg, engine, tokenizer, loaded.yaml_path.parent, loaded.cwd, loaded.composed(), with_env=False
    )
    # one episode at a time: a breakpoint in the workflow stops one episode, and nothing waits on it
    runner.settings = dataclasses.replace(runner.settings, max_env_worker=1, hang_timeout=0)
    tuner = runner.settings.tuner
    if match.group(1):  # a validation step samples greedily; the replay checks prompts, so only limits matter
        tuner = dataclasses.replace(tuner, temperature=0.0)
    repeat = max(e["repeat_index"] for e in recorded) + 1
    episodes = asyncio.run(runner.run(tasks, step=step, num_repeat=repeat, tuner=tuner, desc="replay"))
    by_key = {(e.task_id, e.repeat_index): e for e in episodes}
    out = []
    for rec in recorded:
        replayed = by_key[(rec["task_id"], rec["repeat_index"])]
        out.append(ReplayedEpisode(replayed.episode_id, rec, replayed, _compare(rec, replayed)))
    return ReplayReport(path, step, out)
