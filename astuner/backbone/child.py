"""Running a plan whose training happens in the backbone's own launcher (verl, Trinity).

The steps are the same for both: write the planned config (``plan.config_text``, byte for byte)
and files, write the tasks the reader returned, bind and write the run spec, make the planned
model path exist, then run the planned child (``ray_head.launch``: its log in the records, an owned
Ray head with ``--with-ray``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from astuner.backbone.base import BackbonePlan, RunInputs
from astuner.backbone.ray_head import launch
from astuner.task_reader.task import Task

TaskWriter = Callable[[list[Task], Path, str], None]


def write_plan_files(plan: BackbonePlan, inputs: RunInputs, write_tasks: TaskWriter) -> None:
    """Everything the child reads, into the records: config, files, tasks and the bound run spec."""
    for path, text in {plan.config_path: plan.config_text, **plan.files}.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    train_path, val_path = plan.task_files
    if train_path is not None:
        write_tasks(inputs.train, train_path, "train")
    if val_path is not None:
        write_tasks(inputs.val, val_path, "val")
    if plan.run_spec is not None and plan.run_spec_path is not None:
        plan.run_spec.bind(inputs.loaded).write(plan.run_spec_path)


def ensure_model(plan: BackbonePlan, inputs: RunInputs) -> None:
    """Convert (``builtin:``) or download (hub id) the model where the plan said it would be.

    Raises:
        ModelPathError: a hub id that cannot be fetched, or a folder that is not a model.
        RuntimeError: the resolved folder is not the planned one (an internal error).
    """
    from astuner.model import resolve_model_path

    resolved = resolve_model_path(inputs.loaded.astuner.model.path or "")
    if Path(plan.model_path).is_absolute() and resolved != Path(plan.model_path):
        raise RuntimeError(f"the model resolved to {resolved}, not to the planned {plan.model_path}")


def run_child_plan(plan: BackbonePlan, inputs: RunInputs, write_tasks: TaskWriter) -> int:
    """Write the plan's inputs and run its child to completion; returns the child's exit code."""
    assert plan.child is not None, "a child backbone's plan names its launcher"
    ensure_model(plan, inputs)
    write_plan_files(plan, inputs, write_tasks)
    child = plan.child
    return launch(
        inputs.experiment.root,
        [],
        list(child.argv),
        child.log_name,
        child.with_ray,
        progress=child.progress,
        env=dict(child.env),
    )
