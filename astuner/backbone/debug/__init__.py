"""The debug backbone: everything in this one process, no Ray, breakpoint friendly."""

from astuner.backbone.debug.run import run_debug

__all__ = ["run_debug"]
