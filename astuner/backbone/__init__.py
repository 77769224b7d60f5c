"""Backbones: where episodes are rolled out and the policy is updated.

``run_backbone`` is the only entry the CLI uses; each backbone lives in its own subpackage.
"""

from __future__ import annotations

from loguru import logger

from astuner.config.load import LoadedConfig
from astuner.records import Experiment
from astuner.task_reader import build_task_reader


def run_backbone(loaded: LoadedConfig, experiment: Experiment, *, with_ray: bool, with_logview: bool) -> int:
    """Run the experiment on ``loaded.backbone``; returns the process exit code."""
    reader = build_task_reader(loaded.astuner.task_reader)
    train, val = reader.get_training_tasks(), reader.get_validation_tasks()
    logger.info(f"tasks: {len(train)} training, {len(val)} validation")
    if loaded.backbone == "debug":
        from astuner.backbone.debug import run_debug

        return run_debug(loaded, experiment, train, val)
    if loaded.backbone == "verl":
        from astuner.backbone.verl.run import run_verl

        return run_verl(loaded, experiment, train, val, with_ray=with_ray)
    logger.error(f"--backbone={loaded.backbone} is not available in this version of astuner yet")
    return 1
