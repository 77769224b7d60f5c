"""EnvService: tasks, per-episode environment instances and scores from an environment server.

Interactive tasks (AppWorld, BFCL, WebShop, games) live in servers that list task ids, create one
environment instance per episode, take the agent's actions and score the result. astuner speaks the
predecessor's HTTP protocol (``client.py``), so existing servers work unchanged:

- ``task_reader.type: env_service``: tasks are the ids the server lists (``EnvServiceReader``);
- each episode's workflow gets ``workflow_task.env`` (an ``EnvInstance``), created before it runs and
  always released after it and the judge are done (``EnvSessions``);
- ``astuner.task_judge.env_service_as_judge->EnvServiceJudge`` takes the reward from ``/evaluate``;
- ``launch_command`` starts the server as a child process astuner owns (``launch.py``);
- ``reference_server.py`` is a small game implementing the protocol (the tutorial's environment).
"""

from __future__ import annotations

from astuner.config.schema import EnvServiceConfig
from astuner.env_service.client import EnvCallSettings, EnvServiceClient, EnvServiceError, StepResult
from astuner.env_service.instance import EnvInstance, EnvSessions


def client_from_config(cfg: EnvServiceConfig) -> EnvServiceClient:
    """The client for ``task_reader.env_service`` (``env_url`` must already be resolved, see ``launch.py``)."""
    assert cfg.env_type is not None, "validated by astuner.config"
    settings = EnvCallSettings(timeout=cfg.request_timeout, retries=cfg.retries, backoff=cfg.retry_backoff)
    return EnvServiceClient(cfg.env_url, cfg.env_type, settings)


__all__ = [
    "EnvCallSettings",
    "EnvInstance",
    "EnvServiceClient",
    "EnvServiceError",
    "EnvSessions",
    "StepResult",
    "client_from_config",
]
