"""``--backbone=debug``: the whole RL loop in this process (``run.DebugRun``), no Ray, breakpoint friendly.

Its plan's config is astuner's own resolved config (``config.yaml`` in the records): the debug
backbone translates nothing, and the run trains from exactly that config.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from astuner.backbone.base import BackbonePlan, RunInputs
from astuner.config.load import LoadedConfig
from astuner.model.resolve import planned_model_path


class DebugBackbone:
    """Rollout (vLLM child process) and update (torch) in the astuner process."""

    name: ClassVar[str] = "debug"

    def plan(self, loaded: LoadedConfig, records_dir: Path, *, with_ray: bool = False) -> BackbonePlan:
        warnings = loaded.warnings
        if with_ray:
            warnings += ("--with-ray has no effect with --backbone=debug (it runs in one process, without Ray)",)
        return BackbonePlan(
            backbone=self.name,
            records_dir=records_dir,
            config_path=records_dir / "config.yaml",
            config_text=loaded.to_yaml(),
            class_roots=(loaded.yaml_path.parent, loaded.cwd),
            model_path=planned_model_path(loaded.astuner.model.path or ""),
            warnings=warnings,
        )

    def run(self, plan: BackbonePlan, inputs: RunInputs) -> int:
        from astuner.backbone.debug.run import DebugRun

        return DebugRun(inputs.loaded, inputs.experiment, inputs.train, inputs.val).run()
