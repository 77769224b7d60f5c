"""A two-turn workflow with a forced tool call, so that real runs record multi-call, merged samples.

Used by the rollout e2e test (merging checked token-exactly) and by the logview e2e test (a real
debug run whose sample page shows trained and masked tokens). Named by path in YAMLs.
"""

from agentscope.formatter import DashScopeChatFormatter
from agentscope.message import Msg, ToolResultBlock

from astuner import Workflow, WorkflowOutput
from astuner.tool import execute_python_code

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_python_code",
            "description": "Run Python code and return its output.",
            # maxLength keeps the constrained call short enough to close within max_tokens
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "maxLength": 80}},
                "required": ["code"],
            },
        },
    }
]


class ToolLoop(Workflow):
    """Two turns: one forced call of the named tool, the sandboxed tool's result, then a free answer."""

    async def execute(self, workflow_task, model_tuner):
        formatter = DashScopeChatFormatter()
        history = [
            Msg("system", "You solve math with Python.", "system"),
            Msg("user", workflow_task.task.main_query, "user"),
        ]
        first = await model_tuner(await formatter.format(history), tools=TOOLS, tool_choice="execute_python_code")
        history.append(Msg("assistant", list(first.content), "assistant"))
        for block in first.content:
            if block["type"] == "tool_use":
                result = await execute_python_code(**block["input"])
                history.append(
                    Msg(
                        "system",
                        [
                            ToolResultBlock(
                                type="tool_result", id=block["id"], name=block["name"], output=result.content
                            )
                        ],
                        "system",
                    )
                )
        second = await model_tuner(await formatter.format(history), tools=TOOLS, max_tokens=64)
        return WorkflowOutput(reward=None, metadata={"final_answer": str(second.content)})  # the judge scores it
