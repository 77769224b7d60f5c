"""astuner: fine-tune the LLM behind an AgentScope agent with reinforcement learning.

The public API is what a workflow needs::

    from astuner import ModelTuner, Workflow, WorkflowTask, WorkflowOutput
"""

from astuner.task_reader.task import Task
from astuner.tuner.model_tuner import ModelTuner
from astuner.workflow.base import Workflow, WorkflowOutput, WorkflowTask

__all__ = ["ModelTuner", "Task", "Workflow", "WorkflowOutput", "WorkflowTask"]
__version__ = "0.1.0"
