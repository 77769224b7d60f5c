"""Checkpoints of the debug backbone: ``checkpoints/step_N/`` with everything to continue exactly.

A checkpoint holds the trainable weights (``weights.safetensors``: the full model, or the LoRA
adapter), the optimizer state, and ``state.json`` (step, data position, RNG states). It is written
into a hidden temporary folder and renamed into place, so an interrupted write never leaves a
half checkpoint that ``--resume`` could pick up. With ``trainer_common.max_checkpoints_to_keep`` the
older ones are deleted after each save: a full fine-tuning checkpoint of the 135M model is 1.6 GB
(weights 0.6, AdamW's two moments 1.0), so a long run would otherwise fill the disk.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from astuner.backbone.debug.trainer import PolicyTrainer
from astuner.engine.weight_sync import WeightStream, write_safetensors


@dataclass
class TrainState:
    """Where the run is: the last finished step and the next task to read."""

    step: int = 0
    epoch: int = 0
    batch_index: int = 0


def _rng_state() -> str:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    return base64.b64encode(pickle.dumps(state)).decode()


def _set_rng_state(blob: str) -> None:
    state = pickle.loads(base64.b64decode(blob))  # noqa: S301 (our own file)
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(root: Path, trainer: PolicyTrainer, state: TrainState) -> Path:
    """Write ``root/step_<N>`` atomically; returns its path."""
    final = root / f"step_{state.step}"
    tmp = root / f".step_{state.step}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # written one tensor at a time: safetensors' save_file held a copy of every weight at once (+0.5 GiB
    # with full fine-tuning, while the engine is up)
    write_safetensors(tmp / "weights.safetensors", WeightStream.of(trainer.trainable_state()), None)
    trainer.save_optimizer(tmp / "optimizer.pt")
    meta: dict[str, Any] = {**asdict(state), "rng": _rng_state(), "weights_sha256": trainer.weights_hash()}
    (tmp / "state.json").write_text(json.dumps(meta, indent=1))
    for f in tmp.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _complete(root: Path) -> list[Path]:
    """The complete checkpoints under ``root``, oldest first (temporary folders are ignored)."""
    done = [p for p in root.glob("step_*") if (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("_")[1]))


def latest_checkpoint(root: Path) -> Path | None:
    """The complete checkpoint with the highest step."""
    done = _complete(root)
    return done[-1] if done else None


def prune_checkpoints(root: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints (``keep`` 0 keeps all); returns the deleted.

    Called right after a save, so the newest one is the checkpoint just written and a resume always
    finds it. Each is renamed to a hidden name before it is deleted, so a kill mid-delete never leaves
    a half checkpoint under a ``step_N`` name. Hidden leftovers of another process's interrupted write
    or delete (``.step_*``) go too: the experiment's lock makes this run the folder's only writer.
    Other names are never touched.
    """
    for leftover in root.glob(".step_*"):
        if not leftover.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(leftover, ignore_errors=True)
    old = _complete(root)[:-keep] if keep > 0 else []
    for path in old:
        doomed = root / f".{path.name}.delete-{os.getpid()}"
        os.replace(path, doomed)
        shutil.rmtree(doomed)
    return old


def load_checkpoint(path: Path, trainer: PolicyTrainer) -> TrainState:
    """Restore weights, optimizer and RNG states from ``path``; returns the run position."""
    meta = json.loads((path / "state.json").read_text())
    trainer.load_trainable_state(load_file(str(path / "weights.safetensors")))
    trainer.load_optimizer(path / "optimizer.pt")
    _set_rng_state(meta["rng"])
    return TrainState(step=meta["step"], epoch=meta["epoch"], batch_index=meta["batch_index"])
