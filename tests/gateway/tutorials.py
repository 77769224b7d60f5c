"""The OpenAI-API tutorials' workflows, each with its AgentScope mirror (``tests/gateway/mirror.py``)."""

from __future__ import annotations

import json
import sys

from astuner.config.class_ref import resolve_class
from tests.conftest import REPO
from tests.gateway.mirror import agentscope_mirror

SDK_DIR = REPO / "tutorial" / "example_openai_sdk"
LANGGRAPH_DIR = REPO / "tutorial" / "example_langgraph"
AGENTS_DIR = REPO / "tutorial" / "example_openai_agents"


def sdk_tutorial():
    """(workflow, mirror) of tutorial/example_openai_sdk."""
    workflow = resolve_class("sdk_math_workflow->OpenAIMathWorkflow", SDK_DIR, REPO)
    m = sys.modules[workflow.__module__]

    async def run(arguments):
        return await m.run_tool(json.dumps(arguments))

    return workflow, agentscope_mirror(m.SYSTEM_PROMPT, m.TOOLS, m.MAX_TURNS, run)


def langgraph_tutorial():
    """(workflow, mirror) of tutorial/example_langgraph."""
    workflow = resolve_class("langgraph_math_workflow->LangGraphMathWorkflow", LANGGRAPH_DIR, REPO)
    m = sys.modules[workflow.__module__]
    return workflow, agentscope_mirror(m.SYSTEM_PROMPT, [m.TOOL_SCHEMA], m.MAX_TURNS, m.execute_python_code.ainvoke)


def agents_tutorial():
    """(workflow, mirror) of tutorial/example_openai_agents; the mirror's tool schema is built from the
    function tool's public fields, so a difference in what the Agents SDK sends shows as a different prompt."""
    workflow = resolve_class("agents_math_workflow->AgentsMathWorkflow", AGENTS_DIR, REPO)
    m = sys.modules[workflow.__module__]
    t = m.execute_python_code
    schema = {"name": t.name, "description": t.description, "parameters": t.params_json_schema}
    tool = {"type": "function", "function": {**schema, "strict": t.strict_json_schema}}

    async def run(arguments):
        return await m.run_python(arguments["code"])

    return workflow, agentscope_mirror(m.SYSTEM_PROMPT, [tool], m.MAX_TURNS, run)
