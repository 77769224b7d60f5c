"""The gateway: one OpenAI-compatible HTTP server per process, routing each episode to its own model.

Why one server per process and a key per episode: a workflow's client must reach only its own
episode's context (``/episodes/<key>/v1``; the key is random, so no client can name another
episode), while a server per episode would cost a port and a thread each. The server runs in a
thread with its own event loop and hands each request to the loop that runs the episode
(``run_coroutine_threadsafe``): that works in any process that runs episodes (the debug
backbone's, a verl agent-loop worker, a Trinity workflow runner) whoever owns its main loop, and
the engine client is only ever used from the loop it belongs to.

It binds 127.0.0.1 on a free port and accepts only the per-process secret as bearer key.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from loguru import logger

from astuner.engine.protocol import EngineError
from astuner.gateway import openai_api as api
from astuner.gateway.openai_api import GatewayError
from astuner.tuner.episode_llm import EpisodeLLM, TurnLimitReached


@dataclass
class _Route:
    llm: EpisodeLLM
    model_name: str
    loop: asyncio.AbstractEventLoop
    warned: set[str]


class Gateway:
    """The process's OpenAI-compatible endpoint; ``start()`` it, ``register`` episodes, ``close()`` it.

    Example:
        >>> gw = Gateway().start()  # doctest: +SKIP
        >>> key = gw.register(model_tuner.llm, "policy", asyncio.get_running_loop())  # doctest: +SKIP
        >>> openai.AsyncOpenAI(base_url=gw.base_url(key), api_key=gw.api_key)  # doctest: +SKIP
    """

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.api_key = "astuner-" + secrets.token_urlsafe(24)
        self.port = 0
        self._routes: dict[str, _Route] = {}
        self._finished: dict[str, str] = {}  # key -> episode id, for the 409 that names it
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ---- episodes ------------------------------------------------------------------------------
    def register(self, llm: EpisodeLLM, model_name: str, loop: asyncio.AbstractEventLoop) -> str:
        """Open a route to ``llm`` (whose requests run on ``loop``); returns its key."""
        key = f"{llm.episode_id or 'episode'}-{secrets.token_hex(8)}"
        self._routes[key] = _Route(llm, model_name, loop, set())
        return key

    def unregister(self, key: str) -> None:
        """Close a route: its key now answers 409 (the episode finished)."""
        route = self._routes.pop(key, None)
        if route is not None:
            self._finished[key] = route.llm.episode_id

    def base_url(self, key: str) -> str:
        return f"http://{self.host}:{self.port}/episodes/{key}/v1"

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Gateway:
        """Bind a free port and serve in a daemon thread; returns once it accepts connections."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: without, Nagle + delayed ACK add ~40 ms to every reply (measured)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="warning", access_log=False, lifespan="off", backlog=2048, timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="astuner-gateway", daemon=True
        )
        self._thread.start()
        started = threading.Event()

        def wait() -> None:
            while not self._server.started and self._thread.is_alive():
                started.wait(0.01)

        waiter = threading.Thread(target=wait)
        waiter.start()
        waiter.join(timeout)
        if not self._server.started:
            raise RuntimeError(f"the OpenAI gateway did not start on {self.host}:{self.port} within {timeout:g}s")
        logger.info(f"OpenAI gateway serving on http://{self.host}:{self.port}/episodes/<episode key>/v1")
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    # ---- HTTP ----------------------------------------------------------------------------------
    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        prefix = "/episodes/{key}/v1"
        return Starlette(
            routes=[
                Route(prefix + "/chat/completions", self._chat, methods=["POST"]),
                Route(prefix + "/completions", self._completions, methods=["POST"]),
                Route(prefix + "/models", self._models, methods=["GET"]),
            ]
        )

    def _route(self, request: Any) -> _Route:
        if request.headers.get("authorization", "") != f"Bearer {self.api_key}":
            raise GatewayError(401, "missing or wrong API key (use the one openai_endpoint() returned)", None, "auth")
        key = request.path_params["key"]
        if key in self._finished:
            raise GatewayError(
                409,
                f"episode key {key!r} belongs to episode {self._finished[key]!r}, which has finished",
                None,
                "finished",
            )
        route = self._routes.get(key)
        if route is None:
            raise GatewayError(
                404,
                f"unknown episode key {key!r} (use the base_url openai_endpoint() returned)",
                None,
                "unknown_episode",
            )
        return route

    async def _handle(self, request: Any, kind: str) -> Any:
        from starlette.responses import JSONResponse, StreamingResponse

        try:
            route = self._route(request)
            if kind == "models":
                return JSONResponse(api.models_response(route.model_name))
            try:
                body = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise GatewayError(400, f"the request body is not valid JSON ({exc})") from None
            parse = api.parse_chat if kind == "chat" else api.parse_completion
            req = parse(body, route.model_name, route.llm.settings.gateway_ignore)
            self._count_ignored(route, req.ignored)
            payload = await self._run(route, req, kind)
        except GatewayError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        if not req.stream:
            return JSONResponse(payload)
        events = api.chat_chunks(payload, req.include_usage) if kind == "chat" else [payload]
        return StreamingResponse(_sse(events), media_type="text/event-stream")

    async def _chat(self, request: Any) -> Any:
        return await self._handle(request, "chat")

    async def _completions(self, request: Any) -> Any:
        return await self._handle(request, "completions")

    async def _models(self, request: Any) -> Any:
        return await self._handle(request, "models")

    def _count_ignored(self, route: _Route, names: list[str]) -> None:
        for name in names:
            route.llm.counters["gateway_ignored_params"] += 1
            if name not in route.warned:
                route.warned.add(name)
                logger.warning(
                    f"{route.llm.episode_id}: OpenAI parameter {name!r} ignored "
                    "(astuner.rollout.gateway.ignore_unsupported); counted as gateway_ignored_params"
                )

    async def _run(self, route: _Route, req: api.ParsedRequest, kind: str) -> dict[str, Any]:
        """Run the call on the episode's own loop and format its reply."""
        llm, tokenizer = route.llm, route.llm.renderer.tokenizer
        if kind == "chat":
            coro = llm.chat(req.messages, req.tools, req.tool_choice, req.json_schema, **req.sampling)
        else:
            ids = req.prompt if isinstance(req.prompt, list) else llm.renderer.encode(str(req.prompt))
            coro = llm.complete(ids, **req.sampling)
        try:
            reply = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, route.loop))
        except TurnLimitReached as exc:
            raise GatewayError(409, str(exc), None, "turn_limit_reached") from None
        except ValueError as exc:  # an impossible tool_choice
            raise GatewayError(400, f"tool_choice: {exc}", "tool_choice") from None
        except EngineError as exc:
            raise GatewayError(502, f"the policy engine failed the request: {exc}", None, "engine_error") from None
        if kind == "chat":
            return api.chat_response(reply, req, route.model_name, tokenizer)
        return api.completion_response(reply, req, route.model_name, tokenizer)


async def _sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for event in events:
        yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
    yield b"data: [DONE]\n\n"


_shared: Gateway | None = None
_shared_lock = threading.Lock()


def shared_gateway() -> Gateway:
    """The process's gateway, started on first use (so a process that never asks for it runs none)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Gateway().start()
        return _shared
