"""The tutorials' agent loop written for ModelTuner (AgentScope formatter and blocks), to compare with.

An OpenAI-API workflow and this mirror hold the same conversation: the system prompt, the question,
a forced tool call first, the tool's output, then free turns until an answer or ``max_turns`` calls.
Their episodes must record the same prompt ids, sampled ids and samples.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agentscope.formatter import DashScopeChatFormatter
from agentscope.message import Msg, ToolResultBlock

from astuner import Workflow, WorkflowOutput


def agentscope_mirror(
    system: str, tools: list[dict[str, Any]], max_turns: int, run_tool: Callable[[dict[str, Any]], Awaitable[str]]
) -> type[Workflow]:
    """A Workflow class running the loop with ``run_tool(arguments) -> output``."""

    class AgentScopeMirror(Workflow):
        async def execute(self, workflow_task, model_tuner):
            formatter = DashScopeChatFormatter()
            history = [Msg("system", system, "system"), Msg("user", workflow_task.task.main_query, "user")]
            answer = ""
            for turn in range(max_turns):
                choice = "required" if turn == 0 else None
                response = await model_tuner(await formatter.format(history), tools=tools, tool_choice=choice)
                history.append(Msg("assistant", list(response.content), "assistant"))
                uses = [b for b in response.content if b["type"] == "tool_use"]
                if not uses:
                    answer = "".join(b.get("text", "") for b in response.content)
                    break
                for b in uses:
                    output = await run_tool(b["input"])
                    result = ToolResultBlock(type="tool_result", id=b["id"], name=b["name"], output=output)
                    history.append(Msg("system", [result], "system"))
            return WorkflowOutput(reward=None, metadata={"final_answer": answer})

    return AgentScopeMirror
