"""The experiment folder: ``launcher_record/<experiment>/``.

Layout::

    launcher_record/<experiment>/
        config.yaml          the resolved config of the latest start (earlier ones in config_history/)
        astuner.log          the full log (loguru, DEBUG)
        metrics.jsonl        one JSON object per training/validation step
        trajectories/        recorded episodes and samples, per step
        checkpoints/         step_N/ folders
        tokenizer/           the policy's tokenizer (for logview's token text)
        .lock                held while a run owns the folder

Starting an experiment whose folder already holds a run never overwrites it: ``--resume``
continues it, anything else is refused with a message saying what to do. The one exception is a
start that never completed a training step (a wrong dataset path, a model that did not load): its
folder holds nothing worth resuming, so a fresh start keeps its logs and config in
``config_history/`` and clears the rest, instead of making the corrected rerun pass ``--resume``.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from loguru import logger

from astuner.records.atomic import atomic_write_text

EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RecordsError(RuntimeError):
    """The experiment folder cannot be used as asked; the message says what to do instead."""


@dataclass
class Experiment:
    """An opened experiment folder, locked for this process until ``close()``.

    Attributes:
        root: the experiment's folder (absolute).
        resumed: whether an earlier run's folder was continued.
    """

    root: Path
    resumed: bool
    _lock: IO[str] | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.root / "astuner.log"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def trajectories_dir(self) -> Path:
        return self.root / "trajectories"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def write_config(self, resolved_yaml: str) -> None:
        """Write ``config.yaml``; a resumed run keeps the previous one in ``config_history/``."""
        if self.config_path.exists():
            previous = self.config_path.read_text(encoding="utf-8")
            if previous != resolved_yaml:
                history = self.root / "config_history"
                history.mkdir(exist_ok=True)
                stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.config_path.stat().st_mtime))
                (history / f"config-{stamp}.yaml").write_text(previous, encoding="utf-8")
        atomic_write_text(self.config_path, resolved_yaml)

    def log_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` (non-finite floats are written as null)."""
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        line = json.dumps({"step": step, "time": time.time(), **clean}, sort_keys=False)
        with self.metrics_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    def save_tokenizer(self, tokenizer: Any) -> None:
        """Keep the policy's tokenizer with the records, so logview can show token text even where
        the model folder is not (records copied off a cluster). A few MB; written once, atomically."""
        if self.tokenizer_dir.is_dir():
            return
        tmp = self.root / f".tokenizer.tmp-{os.getpid()}"
        tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, self.tokenizer_dir)

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds any file but the lock (empty subfolders are what an open leaves behind)."""
    return folder.is_dir() and any(p.is_file() and p.name != ".lock" for p in folder.rglob("*"))


# Evidence that a run completed a training step, per backbone (see ``completed_step``).
_TRAIN_TRAJECTORIES = re.compile(r"^(?:(?:verl|trinity)_)?step_\d+(?:\.\d+)?\.jsonl$")
# Step 0 is no trained step: Trinity's trainer saves ``global_step_0`` on its way out of a run that never trained.
_CHECKPOINT = re.compile(r"^(?:global_)?step_0*[1-9]\d*$")


def _jsonl_rows(path: Path):
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the crash
            if isinstance(row, dict):
                yield row


def _checkpoint_dirs(folder: Path, depth: int = 3):
    """``step_N`` / ``global_step_N`` folders up to ``depth`` below ``folder`` (Trinity nests them in
    ``<project>/<name>/``)."""
    if depth == 0 or not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.is_dir():
            if _CHECKPOINT.match(p.name):
                yield p
            else:
                yield from _checkpoint_dirs(p, depth - 1)


def completed_step(root: Path) -> str | None:
    """What in ``root`` shows a completed training step (a path), or None for a run that never trained.

    A training step counts as completed by any of: a ``"phase": "train"`` line in ``metrics.jsonl``
    (debug backbone); a verl file-logger row in ``verl/metrics.jsonl`` with a non-validation key (verl,
    and Trinity's verl trainer); a checkpoint folder of a step N >= 1 (``step_N`` debug, ``global_step_N``
    verl, ``<project>/<name>/global_step_N`` Trinity); a training step's trajectories (``step_N.jsonl``,
    ``verl_step_N.<pid>.jsonl``, ``trinity_step_N.<pid>.jsonl``). Validation before training
    (``val_step_*``, ``val-*`` rows) and what a start writes before its first step (config, logs,
    tokenizer, the backbone's inputs) do not count.
    """
    if any(row.get("phase") == "train" for row in _jsonl_rows(root / "metrics.jsonl")):
        return str(root / "metrics.jsonl")
    verl_metrics = root / "verl" / "metrics.jsonl"
    if any(any(not k.startswith("val-") for k in row.get("data") or {}) for row in _jsonl_rows(verl_metrics)):
        return str(verl_metrics)
    for ckpt in _checkpoint_dirs(root / "checkpoints"):
        return str(ckpt)
    folder = root / "trajectories"
    if folder.is_dir():
        for p in folder.iterdir():
            if _TRAIN_TRAJECTORIES.match(p.name):
                return str(p)
    return None


def _free_name(folder: Path, stem: str, suffix: str) -> Path:
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}.{n}{suffix}"
    return path


def _clear_earlier_start(root: Path) -> Path:
    """Keep the earlier start's config and every log in ``config_history/``; remove the rest.

    Names: ``config-<stamp>.yaml`` (as ``write_config`` names earlier configs) and
    ``<path-with-dashes>-<stamp>.log`` (``astuner-<stamp>.log``, ``verl-<stamp>.log``, ...), the
    stamp being the earlier start's (its config's mtime). Returns ``config_history/``.
    """
    history = root / "config_history"
    history.mkdir(exist_ok=True)
    config = root / "config.yaml"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(config.stat().st_mtime))
    os.replace(config, _free_name(history, f"config-{stamp}", ".yaml"))
    for log in sorted(root.rglob("*.log")):
        rel = log.relative_to(root)
        if rel.parts[0] != "config_history" and log.is_file():
            os.replace(log, _free_name(history, "-".join(rel.with_suffix("").parts) + f"-{stamp}", ".log"))
    for p in root.iterdir():
        if p.name in (".lock", "config_history"):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return history


def _lock(root: Path) -> IO[str]:
    lock = (root / ".lock").open("a+", encoding="utf-8")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "another process"
        lock.close()
        raise RecordsError(f"{root} is in use by a running astuner ({owner}); wait for it or stop it") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}")
    lock.flush()
    return lock


def _start_over_or_refuse(root: Path, name: str) -> None:
    """Without ``--resume``, a folder with records: clear an earlier start that never trained, else refuse."""
    if not (root / "config.yaml").is_file() or completed_step(root) is not None:
        raise RecordsError(
            f"{root} already holds experiment '{name}'; pass --resume to continue it, or choose another name "
            "(astuner.experiment_name=NAME) or another records root (--exp-dir DIR), or delete the folder"
        )
    try:
        history = _clear_earlier_start(root)
    except OSError as exc:
        raise RecordsError(f"{root}: clearing the earlier start (it never trained) failed: {exc}") from None
    logger.info(
        f"{root}: the earlier start of '{name}' never completed a training step; starting afresh "
        f"(its config and logs are kept in {history})"
    )


def open_experiment(records_root: Path, name: str, resume: bool) -> Experiment:
    """Create (or, with ``resume``, reopen) ``records_root/name`` and lock it.

    Without ``resume``, a folder whose earlier start never completed a training step (see
    ``completed_step``) is started afresh: its config and logs move to ``config_history/``, the rest
    is removed. This happens under the lock, so a live run's folder is never touched.

    Raises:
        RecordsError: a bad name, an existing run (with a completed step) without ``resume``,
            nothing to resume, or a folder locked by another live run.
    """
    if not EXPERIMENT_NAME.match(name):
        raise RecordsError(
            f"experiment name {name!r} must be letters, digits, '.', '_' or '-' (set astuner.experiment_name)"
        )
    root = (records_root / name).resolve()
    if resume and not _holds_run(root):
        raise RecordsError(f"--resume: there is no experiment '{name}' to resume at {root}; drop --resume to start it")
    root.mkdir(parents=True, exist_ok=True)
    lock = _lock(root)
    try:
        if not resume and _holds_run(root):
            _start_over_or_refuse(root, name)
        for sub in ("trajectories", "checkpoints"):
            (root / sub).mkdir(exist_ok=True)
    except BaseException:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        raise
    return Experiment(root=root, resumed=resume, _lock=lock)
