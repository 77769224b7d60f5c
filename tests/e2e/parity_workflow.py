"""A test workflow with a reward that always varies inside a group: the parity of the reply length."""

from astuner import Workflow, WorkflowOutput


class ParityWorkflow(Workflow):
    async def execute(self, workflow_task, model_tuner):
        await model_tuner([{"role": "user", "content": workflow_task.task.main_query}])
        n = len(model_tuner.calls[-1].response_ids)
        return WorkflowOutput(reward=float(n % 2), is_success=n % 2 == 1)
