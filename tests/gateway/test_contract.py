"""The contract with the HTTP stack and the clients the gateway is tested with (exact pins).

Used by astuner/gateway/server.py: ``uvicorn.Config(app, log_level, access_log, lifespan, backlog,
timeout_keep_alive)``, ``uvicorn.Server(config).run(sockets=...)``, ``.started``, ``.should_exit``;
Starlette's ``Starlette(routes=)``, ``Route(path, endpoint, methods=)``, ``JSONResponse``,
``StreamingResponse``. The tutorials use the OpenAI SDK, LangGraph/langchain-openai and the OpenAI
Agents SDK (``Agent(name, instructions, model, tools, model_settings)``, ``OpenAIChatCompletionsModel(model,
openai_client)``, ``ModelSettings(tool_choice)``, ``function_tool``, ``Runner.run(agent, input, max_turns,
run_config)``, ``RunConfig(tracing_disabled)``, ``MaxTurnsExceeded``).
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest


@pytest.mark.parametrize(
    ("dist", "pinned"),
    [
        ("uvicorn", "0.54.0"),
        ("starlette", "1.10.0"),
        ("openai", "3.57.0"),
        ("langgraph", "1.2.24"),
        ("langchain-core", "1.8.3"),
        ("langchain-openai", "1.7.4"),
        ("openai-agents", "0.24.0"),
    ],
)
def test_pinned_versions(dist, pinned):
    assert version(dist) == pinned, f"{dist} {version(dist)} installed; astuner pins {pinned} (pyproject.toml)"


def test_uvicorn_surface():
    import uvicorn

    params = inspect.signature(uvicorn.Config).parameters
    assert {"log_level", "access_log", "lifespan", "backlog", "timeout_keep_alive"} <= set(params)
    assert "sockets" in inspect.signature(uvicorn.Server.run).parameters
    server = uvicorn.Server(uvicorn.Config(app=None))
    assert server.started is False and server.should_exit is False


def test_starlette_surface():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    assert "routes" in inspect.signature(Starlette).parameters
    assert {"path", "endpoint", "methods"} <= set(inspect.signature(Route).parameters)
    assert JSONResponse({"a": 1}, status_code=400).status_code == 400
    assert "media_type" in inspect.signature(StreamingResponse).parameters


def test_openai_agents_surface():
    import agents

    params = set(inspect.signature(agents.Agent).parameters)
    assert {"name", "instructions", "model", "tools", "model_settings", "reset_tool_choice"} <= params
    assert {"model", "openai_client"} <= set(inspect.signature(agents.OpenAIChatCompletionsModel).parameters)
    assert agents.ModelSettings(tool_choice="required").tool_choice == "required"
    assert agents.RunConfig(tracing_disabled=True).tracing_disabled is True
    assert {"starting_agent", "input", "max_turns", "run_config"} <= set(
        inspect.signature(agents.Runner.run).parameters
    )
    assert issubclass(agents.MaxTurnsExceeded, Exception)

    async def tool(code: str) -> str:
        """Run code."""
        return code

    t = agents.function_tool(tool)  # the tutorial's mirror reads these public fields
    assert (t.name, t.description, t.strict_json_schema) == ("tool", "Run code.", True)
    assert t.params_json_schema["properties"]["code"]["type"] == "string"
