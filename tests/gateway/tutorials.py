"""The OpenAI-API tutorials' workflows, each with its AgentScope mirror (``tests/gateway/mirror.py``)."""

from __future__ import annotations

import json
import sys

from astuner.config.class_ref import resolve_class
from tests.conftest import REPO
from tests.gateway.mirror import agentscope_mirror

SDK_DIR = REPO / "tutorial" / "example_openai_sdk"
LANGGRAPH_DIR = REPO / "tutorial" / "example_langgraph"


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
