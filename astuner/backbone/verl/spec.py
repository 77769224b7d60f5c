"""The name verl's agent-loop YAML gives the adapter; the run spec itself is ``astuner.backbone.spec``."""

from __future__ import annotations

from astuner.backbone.spec import RunSpec, load_spec

AGENT_LOOP_CLASS = "astuner.backbone.verl.agent_loop.AstunerAgentLoop"

__all__ = ["AGENT_LOOP_CLASS", "RunSpec", "load_spec"]
