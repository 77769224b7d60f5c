"""Backbones: where episodes are rolled out and the policy is updated.

Each backbone lives in its own subpackage and implements ``Backbone`` (``base.py``): a pure
``plan`` and a ``run`` of exactly that plan. ``REGISTRY`` names them; ``get_backbone`` is the one
way to get one, and ``run_backbone`` the one way to run a plan (it owns what every backbone needs
first: the env server, the tasks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib

from loguru import logger

from astuner.backbone.base import Backbone, BackbonePlan, RunInputs
from astuner.config.errors import ConfigError, ConfigIssue
from astuner.config.load import LoadedConfig
from astuner.records import Experiment

# name -> "module:Class", imported on first use (verl's and Trinity's modules import their backbone).
REGISTRY: dict[str, str] = {
    "debug": "astuner.backbone.debug.backbone:DebugBackbone",
    "verl": "astuner.backbone.verl.backbone:VerlBackbone",
    "trinity": "astuner.backbone.trinity.backbone:TrinityBackbone",
}


def get_backbone(name: str) -> Backbone:
    """The backbone registered as ``name``.

    Raises:
        ConfigError: no backbone has that name (one line, naming the ones there are).
    """
    if name not in REGISTRY:
        raise ConfigError(ConfigIssue("--backbone", f"= {name!r} is not one of {', '.join(REGISTRY)}", "command line"))
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def run_backbone(backbone: Backbone, plan: BackbonePlan, loaded: LoadedConfig, experiment: Experiment) -> int:
    """Start what every backbone needs (the env server), read the tasks, and run ``plan``; returns the exit code."""
    from astuner.task_reader import build_task_reader, check_validation

    with contextlib.ExitStack() as owned:
        loaded = _start_env_service(loaded, experiment, owned)
        tr = loaded.astuner.task_reader
        reader = build_task_reader(tr)
        train, val = reader.get_training_tasks(), reader.get_validation_tasks()
        check_validation(tr, val)
        logger.info(f"tasks: {len(train)} training, {len(val)} validation")
        return backbone.run(plan, RunInputs(loaded=loaded, experiment=experiment, train=train, val=val))


def _start_env_service(loaded: LoadedConfig, experiment: Experiment, owned: contextlib.ExitStack) -> LoadedConfig:
    """Launch the configured env server (if any) for the whole run; returns the config with ``env_url``
    resolved to where it serves (``{port}`` filled in) and no launch command (the workers connect, they
    never launch), which every consumer then reads: the reader, the rollout and, through the run spec,
    the verl and Trinity workers."""
    tr = loaded.astuner.task_reader
    if tr.type != "env_service" or not tr.env_service.launch_command:
        return loaded
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
    # The running config connects to the server this run owns: no launch command, the resolved URL.
    env_service = dataclasses.replace(es, env_url=server.base_url, launch_command=[])
    task_reader = dataclasses.replace(tr, env_service=env_service)
    return loaded.replace_astuner(dataclasses.replace(loaded.astuner, task_reader=task_reader))


__all__ = ["REGISTRY", "Backbone", "BackbonePlan", "RunInputs", "get_backbone", "run_backbone"]
