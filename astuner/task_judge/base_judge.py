"""Judges turn a finished episode into a reward when the workflow left ``reward=None``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from astuner.workflow.base import WorkflowOutput, WorkflowTask

if TYPE_CHECKING:
    from astuner.config.schema import AstunerConfig
    from astuner.config.view import ComposedConfig

JudgeResult = tuple[float, bool]


class BaseJudge(ABC):
    """Base class of judges, named in YAML by ``task_judge.judge_protocol: module->Class``.

    astuner calls ``compute_reward`` only for episodes whose workflow returned ``reward=None``.
    It may be a plain method or ``async def`` (astuner awaits the result when it is awaitable),
    so a judge can call a reward model or an environment service without blocking the loop.

    Args:
        config: the experiment's typed ``astuner:`` config, for judges that need settings.
        composed_config: the run's whole config, read-only (``composed_config.<your_section>.<key>``),
            the same view a workflow gets as ``model_tuner.config``.
    """

    def __init__(
        self, config: AstunerConfig | None = None, composed_config: ComposedConfig | None = None, **kwargs: Any
    ) -> None:
        self.config = config
        self.composed_config = composed_config

    @abstractmethod
    def compute_reward(
        self, workflow_task: WorkflowTask, workflow_output: WorkflowOutput
    ) -> JudgeResult | Awaitable[JudgeResult]:
        """Return ``(reward, is_success)`` for one episode."""
