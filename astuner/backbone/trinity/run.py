"""Launch Trinity-RFT's own runner (``trinity run --config``) on the translated config.

Everything Trinity reads is written into the records first, so a run can be inspected or replayed:
``trinity/trinity_config.yaml`` (the whole translated config), ``trinity/tasks/train.jsonl`` /
``test.jsonl`` (the tasks: the query, and the whole ``Task`` as JSON) and ``trinity/astuner_run.json``
(what the adapter rebuilds in Trinity's workflow runners). Trinity runs as a child process of this
one (its log in ``trinity.log``), so a Ctrl-C or SIGTERM here stops it.

Ray: ``trinity run`` needs a running cluster. ``--with-ray`` starts a local head owned by this run
(``RayHead``, token authentication as Ray 2.60 sets it up), stopped by its process group at exit;
otherwise ``RAY_ADDRESS`` (an existing cluster) is used.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from astuner.backbone.ray_head import launch
from astuner.backbone.spec import RunSpec, task_to_json
from astuner.backbone.trinity.config import TrinityTranslation, to_trinity, trinity_issues
from astuner.config.errors import ConfigError
from astuner.config.load import LoadedConfig
from astuner.records import Experiment
from astuner.task_reader.task import Task


def write_tasks(tasks: Sequence[Task], path: Path) -> Path:
    """One JSON line per task: ``task_id``, ``prompt`` (the query, for Trinity's own tools) and ``astuner_task``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for task in tasks:
            row = {"task_id": task.task_id, "prompt": task.main_query, "astuner_task": task_to_json(task)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_inputs(
    loaded: LoadedConfig, root: Path, train: list[Task], val: list[Task], model_path: str | None = None
) -> tuple[TrinityTranslation, Path]:
    """Write everything Trinity reads into ``root/trinity/``; returns the translation and the config file.

    Raises:
        ConfigError: the translation or Trinity's own check rejects the config.
    """
    trinity_dir = root / "trinity"
    translation = to_trinity(loaded, root, model_path=model_path, has_validation=bool(val))
    issues = trinity_issues(translation.config, str(loaded.yaml_path))
    if issues:
        raise ConfigError(issues)
    write_tasks(train, trinity_dir / "tasks" / "train.jsonl")
    if val:
        write_tasks(val, trinity_dir / "tasks" / "test.jsonl")
    else:
        translation.warnings.append("no validation tasks: Trinity's evaluation is off (no eval taskset)")
    RunSpec.of(loaded, root).write(trinity_dir / "astuner_run.json")
    config_path = trinity_dir / "trinity_config.yaml"
    config_path.write_text(translation.to_yaml(), encoding="utf-8")
    return translation, config_path


def run_trinity(
    loaded: LoadedConfig, experiment: Experiment, train: list[Task], val: list[Task], *, with_ray: bool
) -> int:
    """Write Trinity's inputs into the records and run ``trinity run`` to completion; returns its exit code."""
    from astuner.model import resolve_model_path

    model_dir = resolve_model_path(loaded.astuner.model.path or "")
    translation, config_path = write_inputs(loaded, experiment.root, train, val, model_path=str(model_dir))
    cmd = [sys.executable, "-m", "trinity.cli.launcher", "run", "--config", str(config_path)]
    return launch(experiment.root, translation.warnings, cmd, "trinity.log", with_ray)
