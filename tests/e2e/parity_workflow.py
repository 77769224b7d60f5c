"""A test workflow whose reward varies inside a group: the parity of the sum of the sampled ids."""

from astuner import Workflow, WorkflowOutput


class ParityWorkflow(Workflow):
    async def execute(self, workflow_task, model_tuner):
        await model_tuner([{"role": "user", "content": workflow_task.task.main_query}])
        odd = sum(model_tuner.calls[-1].response_ids) % 2
        return WorkflowOutput(reward=float(odd), is_success=bool(odd))
