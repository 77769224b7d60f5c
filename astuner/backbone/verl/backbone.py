"""``--backbone=verl``: verl's own trainer (``python -m verl.trainer.main_ppo``) on the translated config.

The plan holds everything verl reads, all inside the records, so a run can be inspected or
replayed: ``verl/verl_config.yaml`` (the whole translated config, Hydra's run dir included),
``verl/agent_loops.yaml`` (registers ``AstunerAgentLoop`` by name), ``verl/astuner_run.json``
(what the adapter rebuilds in verl's workers) and, written by the run from the reader,
``verl/train.parquet`` / ``val.parquet``. verl runs as a child process of this one (its log in
``verl.log``), so a Ctrl-C or SIGTERM here stops it.

Ray: ``--with-ray`` starts a local head owned by this run (``RayHead``), stopped by its process
group at exit; otherwise ``RAY_ADDRESS`` (an existing cluster) is passed through, or verl's
``run_ppo`` starts a private Ray itself.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

import yaml

from astuner.backbone.base import BackbonePlan, ChildPlan, RunInputs
from astuner.backbone.child import run_child_plan, write_plan_files
from astuner.backbone.spec import RunSpec
from astuner.backbone.verl.config import AGENT_LOOP_NAME, to_verl
from astuner.backbone.verl.progress import progress_line
from astuner.backbone.verl.spec import AGENT_LOOP_CLASS
from astuner.backbone.verl.tasks import task_rows, write_parquet
from astuner.config.load import LoadedConfig
from astuner.model.resolve import planned_model_path
from astuner.task_reader import has_validation
from astuner.task_reader.task import Task


def write_task_parquet(tasks: list[Task], path: Path, split: str) -> None:
    write_parquet(task_rows(tasks, split, AGENT_LOOP_NAME), path)


class VerlBackbone:
    """verl 0.9.1 on Ray; astuner's rollout runs inside verl's agent-loop workers (the adapter)."""

    name: ClassVar[str] = "verl"

    def plan(self, loaded: LoadedConfig, records_dir: Path, *, with_ray: bool = False) -> BackbonePlan:
        verl_dir = records_dir / "verl"
        model_path = planned_model_path(loaded.astuner.model.path or "")
        validation = has_validation(loaded.astuner.task_reader)
        translation = to_verl(loaded, records_dir, model_path=model_path, has_validation=validation)
        spec_path = verl_dir / "astuner_run.json"
        loops = [{"name": AGENT_LOOP_NAME, "_target_": AGENT_LOOP_CLASS, "astuner_run": str(spec_path)}]
        config_path = verl_dir / "verl_config.yaml"
        argv = (
            sys.executable,
            "-m",
            "verl.trainer.main_ppo",
            f"--config-path={config_path.parent}",
            f"--config-name={config_path.stem}",
        )
        return BackbonePlan(
            backbone=self.name,
            records_dir=records_dir,
            config_path=config_path,
            config_text=translation.to_yaml(),
            files={verl_dir / "agent_loops.yaml": yaml.safe_dump(loops, sort_keys=False)},
            task_files=(verl_dir / "train.parquet", verl_dir / "val.parquet" if validation else None),
            run_spec=RunSpec.of(loaded, records_dir),
            run_spec_path=spec_path,
            child=ChildPlan(argv=argv, log_name="verl.log", with_ray=with_ray, progress=progress_line),
            class_roots=(loaded.yaml_path.parent, loaded.cwd),
            model_path=model_path,
            warnings=loaded.warnings + tuple(translation.warnings),
        )

    def write_inputs(self, plan: BackbonePlan, inputs: RunInputs) -> None:
        """Everything the child reads, into the records (``run`` does this before it starts the child)."""
        write_plan_files(plan, inputs, write_task_parquet)

    def run(self, plan: BackbonePlan, inputs: RunInputs) -> int:
        return run_child_plan(plan, inputs, write_task_parquet)
