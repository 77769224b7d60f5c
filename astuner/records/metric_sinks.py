"""Where step metrics go besides ``metrics.jsonl``: TensorBoard, W&B, SwanLab; and the reward curve.

``trainer_common.logger`` names the sinks. W&B and SwanLab are used only when installed (they are
optional); asking for one that is missing is reported once, never silently ignored.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from loguru import logger

from astuner.records.experiment import Experiment


class MetricSinks:
    """Fans step metrics out to the configured sinks; ``metrics.jsonl`` always gets them."""

    def __init__(self, experiment: Experiment, loggers: list[str], project: str, name: str, config: dict[str, Any]):
        self.experiment = experiment
        self.tensorboard = None
        self.wandb = None
        self.swanlab = None
        if "tensorboard" in loggers:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(experiment.root / "tensorboard"))
            except ImportError:
                logger.warning("trainer_common.logger lists tensorboard, but the tensorboard package is not installed")
        if "wandb" in loggers:
            try:
                import wandb

                self.wandb = wandb.init(project=project, name=name, config=config, dir=str(experiment.root))
            except ImportError:
                logger.warning("trainer_common.logger lists wandb, but wandb is not installed (pip install wandb)")
        if "swanlab" in loggers:
            try:
                import swanlab

                self.swanlab = swanlab.init(
                    project=project, experiment_name=name, config=config, logdir=str(experiment.root / "swanlab")
                )
            except ImportError:
                logger.warning(
                    "trainer_common.logger lists swanlab, but swanlab is not installed (pip install swanlab)"
                )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.experiment.log_metrics(step, metrics)
        numeric = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
        }
        if self.tensorboard is not None:
            for k, v in numeric.items():
                self.tensorboard.add_scalar(k, v, step)
            self.tensorboard.flush()
        if self.wandb is not None:
            self.wandb.log(numeric, step=step)
        if self.swanlab is not None:
            self.swanlab.log(numeric, step=step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()
        if self.swanlab is not None:
            self.swanlab.finish()


def plot_reward_curve(metrics_path: Path, out: Path) -> Path | None:
    """Plot train (and validation) reward per step from ``metrics.jsonl`` into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics_path.is_file():  # the run ended before its first step: nothing to draw
        return None
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    train = [
        (r["step"], r["reward_mean"]) for r in rows if r.get("phase") == "train" and r.get("reward_mean") is not None
    ]
    val = [(r["step"], r["val/reward_mean"]) for r in rows if r.get("val/reward_mean") is not None]
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train, strict=True), marker="o", ms=3, label="train reward (mean)")
    if val:
        ax.plot(*zip(*val, strict=True), marker="s", ms=4, label="validation reward (greedy)")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
