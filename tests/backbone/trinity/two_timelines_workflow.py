"""Two model calls that share no prefix (so merging leaves two timelines: two samples per episode),
and a reward fixed by the repeat (odd repeats 1.0, even 0.0) so every group has a known GRPO signal."""

from __future__ import annotations

from astuner import Workflow, WorkflowOutput


class TwoTimelinesWorkflow(Workflow):
    async def execute(self, workflow_task, model_tuner):
        query = workflow_task.task.main_query
        await model_tuner([{"role": "user", "content": query}])
        await model_tuner([{"role": "system", "content": "Check the answer."}, {"role": "user", "content": query}])
        return WorkflowOutput(reward=float(workflow_task.repeat_index % 2), metadata=_seen(model_tuner))


def _seen(model_tuner) -> dict:
    """What the workflow read from the run's config (a user section and an astuner key), for the test."""
    cfg = model_tuner.config
    return {
        "my_game_level": cfg.my_game.level if "my_game" in cfg else None,
        "max_steps": cfg.astuner.rollout.multi_turn.max_steps,
        "calls_left": model_tuner.calls_left,
    }
