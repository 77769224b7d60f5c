"""A two-turn workflow with a forced tool call, so that real runs record multi-call, merged samples.

Used by the rollout e2e test (merging checked token-exactly), and with ``RUN_CONFIG`` by the
logview and teardown e2e tests (short real debug runs). Named by path in YAMLs.
"""

from pathlib import Path

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


# a short debug run of this workflow on generated arithmetic tasks, judged by MathAnswerAsJudge
RUN_CONFIG = {
    "astuner": {
        "task_reader": {"type": "arithmetic", "arithmetic": {"num_train": 8, "num_validation": 1}},
        "data": {"train_batch_size": 2, "max_prompt_length": 768, "max_response_length": 384},
        "rollout": {
            "agentscope_workflow": f"{Path(__file__).resolve()}->ToolLoop",
            "num_repeat": 2,
            "max_response_length_in_one_turn": 64,
            "max_model_len": 1280,
            "max_num_seqs": 4,
        },
        "task_judge": {"judge_protocol": "astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge"},
        "model": {"path": "builtin:smollm2-135m"},
        "trainer_common": {"total_training_steps": 1, "save_freq": 100, "val_before_train": False},
    }
}
