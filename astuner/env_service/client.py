"""HTTP client of the EnvService protocol, with a timeout and retries on every call.

The protocol is the predecessor's, so existing environment servers work unchanged: every call is a
``POST <env_url>/<endpoint>`` with the JSON body ``{env_type, task_id, instance_id, messages, params}``
and every answer carries its result under ``data``:

==================  =================================  ==========================================
endpoint            request                            ``data``
==================  =================================  ==========================================
get_env_profile     ``params.split``                   list of task ids of that split
create              env_type, task_id, instance_id     ``{state, reward, is_terminated, info}``
step                instance_id, ``messages`` (action) ``{state, reward, is_terminated, info}``
evaluate            instance_id, params                a score (number)
release             instance_id                        success (bool)
get_info            instance_id                        tool / environment information
==================  =================================  ==========================================

Why retries differ by endpoint: ``step`` changes the environment, so it is retried only when the
request provably never reached the server (the connection was refused or could not be opened);
retrying it after a read timeout or a 5xx could apply the agent's action twice. Every other call is
idempotent for a given instance id and is also retried on timeouts and 5xx answers. 4xx answers are
the caller's mistake and are never retried.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

ENDPOINTS = ("get_env_profile", "create", "step", "evaluate", "release", "get_info")
_STEP_SAFE = (httpx.ConnectError, httpx.ConnectTimeout)


class EnvServiceError(RuntimeError):
    """A call to the environment service failed for good (after its retries).

    The message names the URL, the endpoint, the instance and the cause, e.g.
    ``env service http://127.0.0.1:8080 POST /create (instance s1-t3-r0): connection refused after 4 attempts``.

    Attributes:
        url: the endpoint's full URL.
        endpoint: ``create``, ``step``, ...
        retriable: whether the cause was transient (connection, timeout, 5xx) rather than a 4xx or a bad answer.
        timed_out: the last attempt got no answer in time, so the server may still have acted on it.
    """

    def __init__(self, message: str, *, url: str, endpoint: str, retriable: bool, timed_out: bool = False):
        super().__init__(message)
        self.url, self.endpoint, self.retriable, self.timed_out = url, endpoint, retriable, timed_out


@dataclass(frozen=True)
class EnvCallSettings:
    """Timeout and retry policy of every call.

    Attributes:
        timeout: seconds one HTTP request may take (connect + answer).
        retries: attempts after the first one for transient failures.
        backoff: seconds before the first retry, doubled for each further retry.
    """

    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0


@dataclass
class StepResult:
    """What ``/create`` and ``/step`` return.

    Attributes:
        state: chat messages to show the agent next (``/create``: the opening messages).
        reward: the environment's reward for this step.
        is_terminated: the episode is over; further steps are an error on most servers.
        info: anything else the server sent.
    """

    state: list[dict[str, Any]] = field(default_factory=list)
    reward: float = 0.0
    is_terminated: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any, where: str) -> StepResult:
        """Build from a ``data`` answer; a bare list is taken as the state (some servers send only that).

        Raises:
            EnvServiceError: ``data`` is neither an object nor a list of messages.
        """
        if isinstance(data, list):
            return cls(state=_messages(data, where))
        if not isinstance(data, dict):
            raise ValueError(f"{where}: data is {type(data).__name__}, expected {{state, reward, is_terminated, info}}")
        state = data.get("state", [])
        state = [state] if isinstance(state, dict) else state
        info = data.get("info") or {}
        return cls(
            state=_messages(state, where),
            reward=float(data.get("reward") or 0.0),
            is_terminated=bool(data.get("is_terminated", False)),
            info=info if isinstance(info, dict) else {"info": info},
        )


def _messages(state: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(state, list) or not all(isinstance(m, dict) for m in state):
        raise ValueError(f"{where}: state is {state!r:.200}, expected a list of chat messages")
    return state


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"connection refused or unreachable ({exc})" if str(exc) else "connection refused or unreachable"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server closed the connection without answering ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within the timeout ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


class EnvServiceClient:
    """Talks to one environment service; safe to share between concurrent episodes.

    Args:
        env_url: base URL, e.g. ``http://127.0.0.1:8080``.
        env_type: the environment kind the server should create (sent with every call).
        settings: timeout and retries.

    Example:
        >>> client = EnvServiceClient("http://127.0.0.1:8080", "guess_number")
        >>> ids = client.list_task_ids("train")                        # doctest: +SKIP
        >>> first = await client.create(ids[0], "episode-1")          # doctest: +SKIP
    """

    def __init__(self, env_url: str, env_type: str, settings: EnvCallSettings | None = None):
        self.env_url = env_url.rstrip("/")
        self.env_type = env_type
        self.settings = settings or EnvCallSettings()
        self._async: httpx.AsyncClient | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None

    # --- the protocol -------------------------------------------------------------------------

    def list_task_ids(self, split: str) -> list[str]:
        """Task ids of ``split`` (``/get_env_profile``); synchronous: readers run before the event loop.

        Raises:
            EnvServiceError: unreachable server, or an answer that is not a list.
        """
        data = self._call_sync("get_env_profile", {"params": {"split": split}})
        if not isinstance(data, list):
            raise self._error("get_env_profile", None, f"data is {type(data).__name__}, expected a list of task ids")
        return [str(task_id) for task_id in data]

    async def create(self, task_id: str, instance_id: str, params: dict[str, Any] | None = None) -> StepResult:
        """Create instance ``instance_id`` of task ``task_id``; returns its opening state."""
        body = {"task_id": task_id, "instance_id": instance_id, "params": params or {}}
        return self._step_result("create", instance_id, await self.call("create", body, instance_id))

    async def step(self, instance_id: str, action: dict[str, Any]) -> StepResult:
        """Apply the agent's action message to the instance."""
        data = await self.call("step", {"instance_id": instance_id, "messages": action}, instance_id)
        return self._step_result("step", instance_id, data)

    async def evaluate(self, instance_id: str, params: dict[str, Any] | None = None) -> float:
        """The instance's score.

        Raises:
            EnvServiceError: the call failed or the score is not a number.
        """
        data = await self.call("evaluate", {"instance_id": instance_id, "params": params or {}}, instance_id)
        if isinstance(data, dict) and "score" in data:  # tolerated: some servers wrap the score
            data = data["score"]
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise self._error("evaluate", instance_id, f"data is {data!r:.200}, expected a number")
        return float(data)

    async def release(self, instance_id: str) -> bool:
        """Free the instance on the server; returns the server's success flag.

        At most one retry: a release is cleanup, and on a dead server the full retry schedule would
        hold every failed episode up for nothing.
        """
        return bool(await self.call("release", {"instance_id": instance_id}, instance_id, retries=1))

    async def get_info(self, instance_id: str, params: dict[str, Any] | None = None) -> Any:
        """Tool / environment information of the instance, as the server sends it."""
        return await self.call("get_info", {"instance_id": instance_id, "params": params or {}}, instance_id)

    # --- transport ----------------------------------------------------------------------------

    async def call(
        self, endpoint: str, body: dict[str, Any], instance_id: str | None = None, retries: int | None = None
    ) -> Any:
        """POST ``body`` to ``endpoint`` with retries; returns the answer's ``data``.

        Args:
            retries: at most this many retries (default: ``settings.retries``).

        Raises:
            EnvServiceError: after the last attempt, naming URL, endpoint, instance and cause.
        """
        payload = self._payload(body)
        attempts = 1 + min(self.settings.retries, self.settings.retries if retries is None else retries)
        for attempt in range(attempts):
            try:
                response = await self._client().post(f"{self.env_url}/{endpoint}", json=payload)
                return self._data(endpoint, response)
            except (httpx.HTTPError, EnvServiceError) as exc:
                last = attempt + 1 == attempts
                if not self._retry(endpoint, exc) or last:
                    raise self._failure(endpoint, instance_id, exc, attempt + 1) from None
            await asyncio.sleep(self.settings.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _call_sync(self, endpoint: str, body: dict[str, Any]) -> Any:
        attempts = 1 + self.settings.retries
        with httpx.Client(timeout=self.settings.timeout) as client:
            for attempt in range(attempts):
                try:
                    response = client.post(f"{self.env_url}/{endpoint}", json=self._payload(body))
                    return self._data(endpoint, response)
                except (httpx.HTTPError, EnvServiceError) as exc:
                    if not self._retry(endpoint, exc) or attempt + 1 == attempts:
                        raise self._failure(endpoint, None, exc, attempt + 1) from None
                time.sleep(self.settings.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def release_sync(self, instance_id: str) -> bool:
        """``release`` without an event loop: the last-resort cleanup after the loop is gone (Ctrl-C)."""
        return bool(self._call_sync("release", {"instance_id": instance_id}))

    def _payload(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = {"env_type": self.env_type, "task_id": None, "instance_id": None, "messages": {}, "params": {}}
        payload.update(body)
        return payload

    def _client(self) -> httpx.AsyncClient:
        # An AsyncClient is bound to the loop that first used it; a new loop (a new asyncio.run) gets a new one.
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is not loop:
            self._async = httpx.AsyncClient(timeout=self.settings.timeout, limits=httpx.Limits(max_connections=256))
            self._async_loop = loop
        return self._async

    async def aclose(self) -> None:
        """Close the connection pool of the current event loop."""
        if self._async is not None and self._async_loop is asyncio.get_running_loop():
            await self._async.aclose()
        self._async = self._async_loop = None

    def _data(self, endpoint: str, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            text = " ".join(response.text.split())[:300]
            raise EnvServiceError(
                f"HTTP {response.status_code}: {text}",
                url=str(response.url),
                endpoint=endpoint,
                retriable=response.status_code >= 500,
            )
        url = str(response.url)
        try:
            answer = response.json()
        except ValueError:
            cause = f"answer is not JSON: {response.text[:200]!r}"
            raise EnvServiceError(cause, url=url, endpoint=endpoint, retriable=False) from None
        if not isinstance(answer, dict) or "data" not in answer:
            cause = f"answer has no 'data' field: {answer!r:.200}"
            raise EnvServiceError(cause, url=url, endpoint=endpoint, retriable=False)
        return answer["data"]

    def _retry(self, endpoint: str, exc: Exception) -> bool:
        if endpoint == "step":
            return isinstance(exc, _STEP_SAFE)
        if isinstance(exc, EnvServiceError):
            return exc.retriable
        return isinstance(exc, httpx.TransportError)

    def _step_result(self, endpoint: str, instance_id: str, data: Any) -> StepResult:
        try:
            return StepResult.parse(data, f"POST /{endpoint}")
        except ValueError as exc:
            raise self._error(endpoint, instance_id, str(exc)) from None

    def _where(self, endpoint: str, instance_id: str | None) -> str:
        instance = f" (instance {instance_id})" if instance_id else ""
        return f"env service {self.env_url} POST /{endpoint}{instance}"

    def _error(self, endpoint: str, instance_id: str | None, cause: str) -> EnvServiceError:
        return EnvServiceError(
            f"{self._where(endpoint, instance_id)}: {cause}",
            url=f"{self.env_url}/{endpoint}",
            endpoint=endpoint,
            retriable=False,
        )

    def _failure(self, endpoint: str, instance_id: str | None, exc: Exception, attempts: int) -> EnvServiceError:
        cause = str(exc) if isinstance(exc, EnvServiceError) else _describe(exc)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        retriable = exc.retriable if isinstance(exc, EnvServiceError) else True
        return EnvServiceError(
            f"{self._where(endpoint, instance_id)}: {cause}{tries}",
            url=f"{self.env_url}/{endpoint}",
            endpoint=endpoint,
            retriable=retriable,
            timed_out=isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout),
        )
