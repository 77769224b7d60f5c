"""Tasks from an environment service (``task_reader.type: env_service``).

A task is only an id here: its opening messages come from ``/create`` when an episode starts (see
``astuner.env_service.instance``), because a server may randomise or personalise them per instance.
"""

from __future__ import annotations

from astuner.env_service.client import EnvServiceClient, EnvServiceError
from astuner.task_reader.rows import TaskReaderError
from astuner.task_reader.task import Task


class EnvServiceReader:
    """Lists the task ids of the training and validation splits (``/get_env_profile``).

    Args:
        client: the service's client.
        training_split: split of the training tasks.
        validation_split: split of the validation tasks, or None.

    Raises (from the getters):
        TaskReaderError: the server is unreachable, or lists no task for the training split.
    """

    def __init__(self, client: EnvServiceClient, training_split: str, validation_split: str | None):
        self.client, self.training_split, self.validation_split = client, training_split, validation_split

    def _tasks(self, split: str, key: str) -> list[Task]:
        try:
            ids = self.client.list_task_ids(split)
        except EnvServiceError as exc:
            raise TaskReaderError(f"astuner.task_reader.env_service.{key} = '{split}': {exc}") from None
        return [
            Task(task_id=task_id, main_query="", env_type=self.client.env_type, metadata={"split": split})
            for task_id in ids
        ]

    def get_training_tasks(self) -> list[Task]:
        tasks = self._tasks(self.training_split, "training_split")
        if not tasks:
            raise TaskReaderError(
                f"astuner.task_reader.env_service.training_split = '{self.training_split}': the env service at "
                f"{self.client.env_url} lists no task ids for it"
            )
        return tasks

    def get_validation_tasks(self) -> list[Task]:
        return [] if self.validation_split is None else self._tasks(self.validation_split, "validation_split")
