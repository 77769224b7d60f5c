"""A workflow whose two model calls share no prefix, so merging leaves two timelines (two samples)."""

from __future__ import annotations

from astuner import Workflow, WorkflowOutput
from tests.backbone.config_probe import seen


class TwoTimelinesWorkflow(Workflow):
    async def execute(self, workflow_task, model_tuner):
        query = workflow_task.task.main_query
        first = await model_tuner([{"role": "user", "content": query}])
        second = await model_tuner(
            [{"role": "system", "content": "Check the answer."}, {"role": "user", "content": query}]
        )
        answer = workflow_task.task.metadata["ground_truth"]
        texts = [b.get("text", "") for r in (first, second) for b in r.content if b.get("type") == "text"]
        return WorkflowOutput(reward=float(all(f"boxed{{{answer}}}" in t for t in texts)), metadata=seen(model_tuner))
