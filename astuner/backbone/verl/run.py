"""Launch verl's own trainer (``python -m verl.trainer.main_ppo``) on the translated config.

Everything verl reads is written into the records first, so a run can be inspected or replayed:
``verl/verl_config.yaml`` (the whole translated config), ``verl/train.parquet`` / ``val.parquet``
(the tasks), ``verl/agent_loops.yaml`` (registers ``AstunerAgentLoop`` by name) and
``verl/astuner_run.json`` (what the adapter rebuilds in verl's workers). verl runs as a child
process of this one (its log in ``verl.log``), so a Ctrl-C or SIGTERM here stops it in ``finally``.

Ray: ``--with-ray`` starts a local head owned by this run (``RayHead``), stopped by its process
group at exit; otherwise ``RAY_ADDRESS`` (an existing cluster) is passed through, or verl's
``run_ppo`` starts a private Ray itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from astuner.backbone.ray_head import launch
from astuner.backbone.verl.config import AGENT_LOOP_NAME, VerlTranslation, to_verl
from astuner.backbone.verl.progress import progress_line
from astuner.backbone.verl.spec import AGENT_LOOP_CLASS, RunSpec
from astuner.backbone.verl.tasks import task_rows, write_parquet
from astuner.config.load import LoadedConfig
from astuner.records import Experiment
from astuner.task_reader.task import Task


def write_inputs(
    loaded: LoadedConfig, root: Path, train: list[Task], val: list[Task], model_path: str | None = None
) -> tuple[VerlTranslation, Path]:
    """Write everything verl reads into ``root/verl/``; returns the translation and the config file."""
    verl_dir = root / "verl"
    translation = to_verl(loaded, root, model_path=model_path)
    write_parquet(task_rows(train, "train", AGENT_LOOP_NAME), verl_dir / "train.parquet")
    if val:
        write_parquet(task_rows(val, "val", AGENT_LOOP_NAME), verl_dir / "val.parquet")
    else:  # verl always builds a validation loader; with no validation tasks it never runs one
        translation.config.data.val_files = str(verl_dir / "train.parquet")
        translation.config.trainer.test_freq = -1
        translation.config.trainer.val_before_train = False
        translation.warnings.append("no validation tasks: verl's validation is off (trainer.test_freq = -1)")
    spec = RunSpec.of(loaded, root).write(verl_dir / "astuner_run.json")
    loops = [{"name": AGENT_LOOP_NAME, "_target_": AGENT_LOOP_CLASS, "astuner_run": str(spec)}]
    (verl_dir / "agent_loops.yaml").write_text(yaml.safe_dump(loops, sort_keys=False), encoding="utf-8")
    config_path = verl_dir / "verl_config.yaml"
    config_path.write_text(translation.to_yaml(), encoding="utf-8")
    return translation, config_path


def run_verl(
    loaded: LoadedConfig, experiment: Experiment, train: list[Task], val: list[Task], *, with_ray: bool
) -> int:
    """Write verl's inputs into the records and run verl's trainer to completion; returns its exit code."""
    from astuner.model import resolve_model_path

    model_dir = resolve_model_path(loaded.astuner.model.path or "")
    translation, config_path = write_inputs(loaded, experiment.root, train, val, model_path=str(model_dir))
    cmd = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        f"--config-path={config_path.parent}",
        f"--config-name={config_path.stem}",
    ]
    return launch(experiment.root, translation.warnings, cmd, "verl.log", with_ray, progress=progress_line)
