"""A test workflow whose groups have signal or not by the task alone (so a test knows which will).

It calls the model once (the engine runs for real), then rewards: a task whose id hashes to 0 mod 4
gets ``repeat_index % 2`` (rewards differ: signal); every other task gets 1.0 for all its episodes.
"""

import hashlib

from astuner import Workflow, WorkflowOutput


def has_signal(task_id: str) -> bool:
    return int(hashlib.sha256(task_id.encode()).hexdigest(), 16) % 4 == 0


class SignalWorkflow(Workflow):
    async def execute(self, workflow_task, model_tuner):
        await model_tuner([{"role": "user", "content": workflow_task.task.main_query}])
        if has_signal(workflow_task.task.task_id):
            return WorkflowOutput(reward=float(workflow_task.repeat_index % 2), is_success=True)
        return WorkflowOutput(reward=1.0, is_success=True)
