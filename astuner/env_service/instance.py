"""Per-episode environment instances: the workflow's ``workflow_task.env`` and who owns them.

``EnvSessions`` opens one instance per episode before the workflow runs and releases it after the
workflow *and the judge* (which may call ``/evaluate``) are done, on every exit path: return,
exception, timeout, cancellation. Instances whose release never ran (the event loop was torn down
by Ctrl-C between two awaits) are released by ``close()``, which the backbone calls in a ``finally``
after its loop: a long RL run must not leak thousands of live instances on a shared server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

from loguru import logger

from astuner.env_service.client import EnvCallSettings, EnvServiceClient, EnvServiceError, StepResult
from astuner.task_reader.task import Task


def action_message(action: Any) -> dict[str, Any]:
    """The protocol's action message for what a workflow passes to ``step``.

    Accepts a string (sent as the assistant's text), a chat-message dict (sent as is), or an
    AgentScope ``Msg`` (its text content, with its role).

    Raises:
        TypeError: anything else.
    """
    if isinstance(action, str):
        return {"role": "assistant", "content": action}
    if isinstance(action, dict):
        return action
    if hasattr(action, "get_text_content"):
        return {"role": getattr(action, "role", "assistant"), "content": action.get_text_content() or ""}
    raise TypeError(f"env.step takes a str, a chat message dict or an AgentScope Msg, got {type(action).__name__}")


def _first_user_text(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


class EnvInstance:
    """The workflow's handle on its episode's environment instance (``workflow_task.env``).

    Attributes:
        task: the task with ``init_messages`` from ``/create`` (and ``main_query``: their first user text).
        instance_id: the id the server knows this instance by.
        last: the latest ``StepResult`` (from ``/create``, then from each ``step``).

    Example:
        >>> result = await workflow_task.env.step("7")                  # doctest: +SKIP
        >>> result.state[-1]["content"], result.is_terminated           # doctest: +SKIP
        ('Higher. 3 guesses left.', False)
    """

    def __init__(self, client: EnvServiceClient, task: Task, instance_id: str, first: StepResult):
        self._client = client
        self.instance_id = instance_id
        self.last = first
        self.released = False
        self.task = dataclasses.replace(
            task, init_messages=list(first.state), main_query=task.main_query or _first_user_text(first.state)
        )

    @property
    def is_terminated(self) -> bool:
        """Whether the environment said the episode is over."""
        return self.last.is_terminated

    async def step(self, action: Any) -> StepResult:
        """Send the agent's action (str, message dict or ``Msg``); returns the environment's answer.

        Raises:
            EnvServiceError: the call failed (after retries) or the instance was released.
        """
        if self.released:
            raise EnvServiceError(
                f"env instance {self.instance_id} was already released; step it only inside the workflow",
                url=f"{self._client.env_url}/step",
                endpoint="step",
                retriable=False,
            )
        self.last = await self._client.step(self.instance_id, action_message(action))
        return self.last

    async def evaluate(self, params: dict[str, Any] | None = None) -> float:
        """The environment's score of this episode (``/evaluate``)."""
        return await self._client.evaluate(self.instance_id, params)

    async def get_info(self, params: dict[str, Any] | None = None) -> Any:
        """Tool / environment information of this instance (``/get_info``)."""
        return await self._client.get_info(self.instance_id, params)


class EnvSessions:
    """Opens and always releases the environment instances of episodes.

    Args:
        client: the service's client (shared by all episodes).

    Attributes:
        live: instances opened and not yet released, by instance id.
        release_failures: releases that failed (logged; the episode's result still counts).
    """

    def __init__(self, client: EnvServiceClient):
        self.client = client
        self.live: dict[str, EnvInstance] = {}
        self.release_failures = 0

    async def open(self, task: Task, episode_id: str) -> EnvInstance:
        """Create the instance of ``task`` for one episode (``/create``).

        The instance id is the episode id plus a random suffix: ids stay readable in the server's
        log, and a validation episode never collides with a training episode of the same step.

        Raises:
            EnvServiceError: the server could not create it.
        """
        instance_id = f"{episode_id}-{uuid.uuid4().hex[:8]}"
        try:
            first = await self.client.create(task.task_id, instance_id)
        except (EnvServiceError, asyncio.CancelledError) as exc:
            # A create that timed out or was cancelled may have succeeded on the server: leave it to the
            # sweep of aclose()/close(). A refused connection or an error answer created nothing.
            if isinstance(exc, asyncio.CancelledError) or exc.timed_out:
                self.live[instance_id] = EnvInstance(self.client, task, instance_id, StepResult())
            raise
        instance = EnvInstance(self.client, task, instance_id, first)
        self.live[instance_id] = instance
        return instance

    async def release(self, instance: EnvInstance) -> None:
        """Release ``instance`` (``/release``); a failure is logged and counted, never raised.

        If this await is cancelled (Ctrl-C), the instance stays in ``live`` for ``close()``.
        """
        if instance.released:
            return
        try:
            await self.client.release(instance.instance_id)
        except EnvServiceError as exc:
            self.release_failures += 1
            logger.warning(f"releasing env instance {instance.instance_id} failed: {exc}")
        instance.released = True
        self.live.pop(instance.instance_id, None)

    async def aclose(self) -> None:
        """Release what is still live (concurrently), then close the connection pool (end of the event loop)."""
        await asyncio.gather(*(self.release(instance) for instance in list(self.live.values())))
        await self.client.aclose()

    def close(self) -> None:
        """Release what is still live without an event loop (after Ctrl-C tore the loop down).

        One quick attempt each (no retries): at shutdown a dead server must not hold the exit up.
        """
        if not self.live:
            return
        quick = EnvServiceClient(self.client.env_url, self.client.env_type, EnvCallSettings(timeout=5.0, retries=0))
        for instance_id in list(self.live):
            self.live.pop(instance_id).released = True
            try:
                quick.release_sync(instance_id)
                logger.info(f"released env instance {instance_id} at shutdown")
            except EnvServiceError as exc:
                self.release_failures += 1
                logger.warning(f"releasing env instance {instance_id} at shutdown failed: {exc}")
