"""A workflow whose second repeat of every task fails: the group rule's case on verl's real v1 path."""

from __future__ import annotations

from astuner import Workflow, WorkflowOutput


class FailSecondRepeat(Workflow):
    async def execute(self, workflow_task, model_tuner):
        if workflow_task.repeat_index == 1:
            raise RuntimeError("scripted failure of the second repeat")
        reply = await model_tuner([{"role": "user", "content": workflow_task.task.main_query}])
        answer = workflow_task.task.metadata["ground_truth"]
        text = "".join(b.get("text", "") for b in reply.content if b.get("type") == "text")
        return WorkflowOutput(reward=float(f"boxed{{{answer}}}" in text))
