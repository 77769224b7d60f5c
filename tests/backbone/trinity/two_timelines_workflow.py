"""Two model calls that share no prefix (so merging leaves two timelines: two samples per episode),
and a reward fixed by the repeat (odd repeats 1.0, even 0.0) so every group has a known GRPO signal."""

from __future__ import annotations

from astuner import Workflow, WorkflowOutput
from tests.backbone.config_probe import seen


class TwoTimelinesWorkflow(Workflow):
    async def execute(self, workflow_task, model_tuner):
        query = workflow_task.task.main_query
        await model_tuner([{"role": "user", "content": query}])
        await model_tuner([{"role": "system", "content": "Check the answer."}, {"role": "user", "content": query}])
        return WorkflowOutput(reward=float(workflow_task.repeat_index % 2), metadata=seen(model_tuner))
