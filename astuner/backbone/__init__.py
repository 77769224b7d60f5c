"""Backbones: where episodes are rolled out and the policy is updated.

``run_backbone`` is the only entry the CLI uses; each backbone lives in its own subpackage.
"""

from __future__ import annotations

import contextlib

from loguru import logger

from astuner.config.load import LoadedConfig
from astuner.records import Experiment
from astuner.task_reader import build_task_reader


def run_backbone(loaded: LoadedConfig, experiment: Experiment, *, with_ray: bool, with_logview: bool) -> int:
    """Run the experiment on ``loaded.backbone``; returns the process exit code."""
    with contextlib.ExitStack() as owned:
        _start_env_service(loaded, experiment, owned)
        reader = build_task_reader(loaded.astuner.task_reader)
        train, val = reader.get_training_tasks(), reader.get_validation_tasks()
        logger.info(f"tasks: {len(train)} training, {len(val)} validation")
        if loaded.backbone == "debug":
            from astuner.backbone.debug import run_debug

            return run_debug(loaded, experiment, train, val)
        if loaded.backbone == "verl":
            from astuner.backbone.verl.run import run_verl

            return run_verl(loaded, experiment, train, val, with_ray=with_ray)
        from astuner.backbone.trinity.run import run_trinity

        return run_trinity(loaded, experiment, train, val, with_ray=with_ray)


def _start_env_service(loaded: LoadedConfig, experiment: Experiment, owned: contextlib.ExitStack) -> None:
    """Launch the configured env server (if any) for the whole run and resolve ``env_url`` to where it serves.

    The resolved URL is written back into the typed config (``{port}`` becomes the chosen port) so that
    the reader and the rollout build their clients from one place.
    """
    tr = loaded.astuner.task_reader
    if tr.type != "env_service" or not tr.env_service.launch_command:
        return
    from astuner.env_service.launch import launch_env_server

    es = tr.env_service
    server = launch_env_server(
        es.launch_command,
        es.env_url,
        experiment.root / "env_service.log",
        loaded.yaml_path.parent,
        es.ready_path,
        es.startup_timeout,
    )
    owned.enter_context(server)
    es.env_url = server.base_url
