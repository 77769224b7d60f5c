"""A math agent written against the OpenAI API (the OpenAI Python SDK), trained by astuner.

The workflow never sees an astuner model: it asks the tuner for an OpenAI-compatible endpoint
(``base_url, api_key = model_tuner.openai_endpoint()``) and runs an ordinary tool-calling loop with
``openai.AsyncOpenAI``. astuner renders every request with the policy's chat template, samples it
on the policy engine and records it token-exactly, the same way as for a ModelTuner agent.

The tool is astuner's sandboxed python (``astuner.tool.run_sandboxed``): during RL a policy
explores, and model-written code must not reach the machine.
"""

from __future__ import annotations

import json

import openai

from astuner import ModelTuner, Workflow, WorkflowOutput, WorkflowTask
from astuner.tool import run_sandboxed

SYSTEM_PROMPT = (
    "You are an agent specialized in solving math problems with tools. "
    "You can write and execute Python code to perform calculation or verify your answer. "
    "You should return your final answer within \\boxed{}."
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_python_code",
            "description": "Run Python code and return what it prints.",
            # maxLength keeps the (constrained) call short enough to close within the turn's max_tokens
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "maxLength": 80}},
                "required": ["code"],
            },
        },
    }
]
MAX_TURNS = 3


async def run_tool(arguments: str) -> str:
    """The tool's output as the model will read it (stdout, then stderr)."""
    code = json.loads(arguments).get("code", "")
    result = await run_sandboxed(str(code), timeout=10)
    return (result.stdout + result.stderr).strip() or "(no output)"


async def solve(client: openai.AsyncOpenAI, model: str, question: str) -> tuple[str, list[dict]]:
    """The agent: call the python tool first (tool_choice="required"), then answer or call it again."""
    messages: list[dict] = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
    answer = ""
    for turn in range(MAX_TURNS):
        response = await client.chat.completions.create(
            model=model, messages=messages, tools=TOOLS, tool_choice="required" if turn == 0 else "auto"
        )
        message = response.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            answer = message.content or ""
            break
        for call in message.tool_calls:
            output = await run_tool(call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
    return answer, messages


# --8<-- [start:workflow] (the documentation site includes this class)
class OpenAIMathWorkflow(Workflow):
    name: str = "openai_math_workflow"

    async def execute(self, workflow_task: WorkflowTask, model_tuner: ModelTuner) -> WorkflowOutput:
        base_url, api_key = model_tuner.openai_endpoint()
        async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
            answer, _ = await solve(client, model_tuner.model_name, workflow_task.task.main_query)
        # reward=None: the configured judge (MathAnswerAsJudge) scores the final answer
        return WorkflowOutput(reward=None, metadata={"final_answer": answer})
        # --8<-- [end:workflow]
