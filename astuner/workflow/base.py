"""The user-facing workflow API: what a workflow receives and what it returns.

A workflow runs one episode: it builds an agent around the ``ModelTuner`` it is given (the only
astuner object it sees), lets it work on ``workflow_task.task`` and returns a ``WorkflowOutput``.
Everything the model generated is recorded underneath, out of the workflow's sight.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from astuner.task_reader.task import Task

if TYPE_CHECKING:
    from astuner.env_service.instance import EnvInstance
    from astuner.tuner.model_tuner import ModelTuner


@dataclass
class WorkflowTask:
    """The input of one episode.

    Attributes:
        task: the task to solve.
        episode_id: unique id of this episode.
        repeat_index: which of the task's ``num_repeat`` episodes this is.
        env: with ``task_reader.type: env_service``, this episode's environment instance (``await
            env.step(action)``, ``env.evaluate()``, ``env.get_info()``); astuner created it before the
            workflow started (``task.init_messages`` are its opening messages) and releases it afterwards.
            None for other task sources.
    """

    task: Task
    episode_id: str = ""
    repeat_index: int = 0
    env: EnvInstance | None = None


@dataclass
class WorkflowOutput:
    """The result of one episode.

    Attributes:
        reward: the episode's reward; None lets the configured judge compute it.
        is_success: whether the task was solved; None lets the judge (or reward > 0) decide.
        metadata: anything the judge or the records need, e.g. ``{"final_answer": "..."}``.
    """

    reward: float | None = None
    is_success: bool | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Workflow(ABC):
    """Base class of user workflows.

    astuner creates a new instance for every episode, so ``execute`` may keep per-episode state on
    ``self`` (the seed keeps its agent there) even while many episodes run concurrently.

    Example:
        >>> class Echo(Workflow):
        ...     async def execute(self, workflow_task, model_tuner):
        ...         return WorkflowOutput(reward=1.0)
    """

    name: str = "workflow"

    @abstractmethod
    async def execute(self, workflow_task: WorkflowTask, model_tuner: ModelTuner) -> WorkflowOutput:
        """Run one episode and return its output."""
