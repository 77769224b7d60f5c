"""The workflow API: ``Workflow``, ``WorkflowTask``, ``WorkflowOutput``."""

from astuner.workflow.base import Workflow, WorkflowOutput, WorkflowTask

__all__ = ["Workflow", "WorkflowOutput", "WorkflowTask"]
