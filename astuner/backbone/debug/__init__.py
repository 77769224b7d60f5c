"""The debug backbone: everything in this one process, no Ray, breakpoint friendly."""

from astuner.backbone.debug.backbone import DebugBackbone

__all__ = ["DebugBackbone"]
