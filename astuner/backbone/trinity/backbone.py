"""``--backbone=trinity``: Trinity-RFT's own runner (``trinity run --config``) on the translated config.

The plan holds everything Trinity reads, all inside the records: ``trinity/trinity_config.yaml``
(the whole translated config, after Trinity's own check passed), ``trinity/astuner_run.json``
(what the adapter rebuilds in Trinity's workflow runners) and, written by the run from the
reader, ``trinity/tasks/train.jsonl`` / ``test.jsonl`` (the query, and the whole ``Task`` as JSON).
Trinity runs as a child process of this one (its log in ``trinity.log``), so a Ctrl-C or SIGTERM
here stops it.

Ray: ``trinity run`` needs a running cluster. ``--with-ray`` starts a local head owned by this run
(``RayHead``, token authentication as Ray 2.60 sets it up), stopped by its process group at exit;
otherwise ``RAY_ADDRESS`` (an existing cluster) is used.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from loguru import logger

from astuner.backbone.base import BackbonePlan, ChildPlan, RunInputs
from astuner.backbone.child import run_child_plan, write_plan_files
from astuner.backbone.spec import RunSpec, task_to_json
from astuner.backbone.trinity.cluster import (
    COLOCATE_FIX_VERSIONS,
    PLUGIN_DIRS_VAR,
    colocate_plugin_env,
    plan_cluster,
    trinity_version,
)
from astuner.backbone.trinity.config import to_trinity, trinity_issues
from astuner.backbone.trinity.outcome import swallowed_failure
from astuner.config.errors import ConfigError
from astuner.config.load import LoadedConfig
from astuner.gpus import visible_gpus
from astuner.model.resolve import planned_model_path
from astuner.task_reader import has_validation
from astuner.task_reader.task import Task


def write_tasks(tasks: Sequence[Task], path: Path, split: str = "") -> Path:
    """One JSON line per task: ``task_id``, ``prompt`` (the query, for Trinity's own tools) and ``astuner_task``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for task in tasks:
            row = {"task_id": task.task_id, "prompt": task.main_query, "astuner_task": task_to_json(task)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


class TrinityBackbone:
    """Trinity-RFT 0.6.0 on Ray; astuner's rollout runs inside Trinity's workflow runners (the adapter)."""

    name: ClassVar[str] = "trinity"

    def plan(self, loaded: LoadedConfig, records_dir: Path, *, with_ray: bool = False) -> BackbonePlan:
        trinity_dir = records_dir / "trinity"
        model_path = planned_model_path(loaded.astuner.model.path or "")
        validation = has_validation(loaded.astuner.task_reader)
        cluster = plan_cluster(loaded, with_ray=with_ray, gpus_here=visible_gpus())
        translation = to_trinity(loaded, records_dir, model_path=model_path, has_validation=validation, cluster=cluster)
        issues = trinity_issues(translation.config, str(loaded.yaml_path))
        if issues:
            raise ConfigError(issues)
        notes = list(translation.warnings)
        if not validation:
            notes.append("no validation tasks: Trinity's evaluation is off (no eval taskset)")
        release = trinity_version()
        env, outline = (
            {},
            [
                f"Trinity-RFT {release}'s config check passed (cluster: {cluster.node_num} node(s) x "
                f"{cluster.gpu_per_node} GPUs, {cluster.origin})"
            ],
        )
        if cluster.colocate:
            outline.append(
                "one GPU: Trinity's colocate mode (explorer and trainer share it; the engine gets "
                f"{translation.config['explorer']['rollout_model']['gpu_memory_utilization']} of its memory, "
                "weights are synced in memory)"
            )
            if release in COLOCATE_FIX_VERSIONS:
                env = colocate_plugin_env()
                outline.append(
                    f"Trinity-RFT {release} colocate start-up fix (Trinity-RFT #602, fixed upstream by "
                    f"PR #603) loaded as a Trinity plugin: {PLUGIN_DIRS_VAR}={env[PLUGIN_DIRS_VAR]}"
                )
        config_path = trinity_dir / "trinity_config.yaml"
        tasks = trinity_dir / "tasks"
        return BackbonePlan(
            backbone=self.name,
            records_dir=records_dir,
            config_path=config_path,
            config_text=translation.to_yaml(),
            task_files=(tasks / "train.jsonl", tasks / "test.jsonl" if validation else None),
            run_spec=RunSpec.of(loaded, records_dir),
            run_spec_path=trinity_dir / "astuner_run.json",
            child=ChildPlan(
                argv=(sys.executable, "-m", "trinity.cli.launcher", "run", "--config", str(config_path)),
                env=env,
                log_name="trinity.log",
                with_ray=with_ray,
            ),
            class_roots=(loaded.yaml_path.parent, loaded.cwd),
            model_path=model_path,
            warnings=loaded.warnings + tuple(notes),
            notes=tuple(outline),
        )

    def write_inputs(self, plan: BackbonePlan, inputs: RunInputs) -> None:
        """Everything the child reads, into the records (``run`` does this before it starts the child)."""
        write_plan_files(plan, inputs, write_tasks)

    def run(self, plan: BackbonePlan, inputs: RunInputs) -> int:
        """Run Trinity; a run it ended with a failed trainer or explorer is a failure here (exit 1)."""
        code = run_child_plan(plan, inputs, write_tasks)
        assert plan.child is not None
        failure = swallowed_failure(inputs.experiment.root / plan.child.log_name) if code == 0 else None
        if failure is not None:
            logger.error(failure)
            return 1
        return code
