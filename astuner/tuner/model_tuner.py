"""ModelTuner: an AgentScope chat model backed by the policy being trained (filled in by the rollout core)."""

from __future__ import annotations

from agentscope.model import ChatModelBase


class ModelTuner(ChatModelBase):
    """The chat model a workflow hands to its agents."""
