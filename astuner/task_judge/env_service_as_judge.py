"""Reward from the environment itself: the score ``/evaluate`` gives the episode's instance."""

from __future__ import annotations

from astuner.task_judge.base_judge import BaseJudge, JudgeResult
from astuner.workflow.base import WorkflowOutput, WorkflowTask


class EnvServiceJudge(BaseJudge):
    """``(score, score >= task_judge.env_success_threshold)`` with the score from ``/evaluate``.

    astuner releases the instance only after the judge ran, so the score is taken on the final state.

    Raises:
        ValueError: the episode has no environment instance (``task_reader.type`` is not ``env_service``).
        EnvServiceError: ``/evaluate`` failed; the episode is then counted as failed, not scored 0.

    Example:
        task_judge:
          judge_protocol: astuner.task_judge.env_service_as_judge->EnvServiceJudge
          env_success_threshold: 1.0
    """

    async def compute_reward(self, workflow_task: WorkflowTask, workflow_output: WorkflowOutput) -> JudgeResult:
        if workflow_task.env is None:
            raise ValueError(
                "EnvServiceJudge needs an environment instance (workflow_task.env); set task_reader.type: env_service"
            )
        score = await workflow_task.env.evaluate()
        threshold = self.config.task_judge.env_success_threshold if self.config is not None else 1.0
        return score, score >= threshold
