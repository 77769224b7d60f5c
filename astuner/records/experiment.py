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
continues it, anything else is refused with a message saying what to do.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _holds_run(folder: Path) -> bool:
    return folder.is_dir() and any(p.name != ".lock" for p in folder.iterdir())


def open_experiment(records_root: Path, name: str, resume: bool) -> Experiment:
    """Create (or, with ``resume``, reopen) ``records_root/name`` and lock it.

    Raises:
        RecordsError: a bad name, an existing run without ``resume``, nothing to resume, or a
            folder locked by another live run.
    """
    if not EXPERIMENT_NAME.match(name):
        raise RecordsError(
            f"experiment name {name!r} must be letters, digits, '.', '_' or '-' (set astuner.experiment_name)"
        )
    root = (records_root / name).resolve()
    if _holds_run(root) and not resume:
        raise RecordsError(
            f"{root} already holds experiment '{name}'; pass --resume to continue it, or choose another name "
            "(astuner.experiment_name=NAME) or another records root (--exp-dir DIR), or delete the folder"
        )
    if resume and not _holds_run(root):
        raise RecordsError(f"--resume: there is no experiment '{name}' to resume at {root}; drop --resume to start it")
    for sub in ("", "trajectories", "checkpoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
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
    return Experiment(root=root, resumed=resume, _lock=lock)
