"""A math agent written with the OpenAI Agents SDK (``openai-agents``), trained by astuner.

The agent is an ordinary ``agents.Agent`` with one function tool. Its model is the episode's
OpenAI-compatible endpoint (``base_url, api_key = model_tuner.openai_endpoint()``) through
``OpenAIChatCompletionsModel``: astuner's gateway serves the Chat Completions API, not the
Responses API that the SDK's default model uses. Every call is rendered with the policy's chat
template, sampled on the policy engine and recorded token-exactly, as for a ModelTuner agent.

The tool runs model-written code in astuner's sandboxed python (``astuner.tool.run_sandboxed``):
during RL a policy explores, and its code must not reach the machine.
"""

from __future__ import annotations

from typing import Annotated

import openai
from agents import Agent, MaxTurnsExceeded, ModelSettings, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool
from pydantic import Field

from astuner import ModelTuner, Workflow, WorkflowOutput, WorkflowTask
from astuner.tool import run_sandboxed

SYSTEM_PROMPT = (
    "You are an agent specialized in solving math problems with tools. "
    "You can write and execute Python code to perform calculation or verify your answer. "
    "You should return your final answer within \\boxed{}."
)
MAX_TURNS = 3  # model calls per episode


async def run_python(code: str) -> str:
    """The tool's output as the model will read it (stdout, then stderr)."""
    result = await run_sandboxed(code, timeout=10)
    return (result.stdout + result.stderr).strip() or "(no output)"


# max_length keeps the (constrained) call short enough to close within the turn's max_tokens
@function_tool
async def execute_python_code(code: Annotated[str, Field(max_length=80)]) -> str:
    """Run Python code and return what it prints."""
    return await run_python(code)


def math_agent(client: openai.AsyncOpenAI, model: str) -> Agent:
    """The agent. The embedded 135M model never calls a tool on its own, so the first call must
    (``tool_choice="required"``); after a tool ran, the SDK resets the choice (``reset_tool_choice``)."""
    return Agent(
        name="math_agent",
        instructions=SYSTEM_PROMPT,
        model=OpenAIChatCompletionsModel(model=model, openai_client=client),
        tools=[execute_python_code],
        model_settings=ModelSettings(tool_choice="required"),
    )


async def solve(client: openai.AsyncOpenAI, model: str, question: str) -> str:
    """The final answer, or "" when every one of MAX_TURNS calls asked for the tool."""
    try:
        # tracing off: the SDK would otherwise export traces to OpenAI's servers
        result = await Runner.run(
            math_agent(client, model), question, max_turns=MAX_TURNS, run_config=RunConfig(tracing_disabled=True)
        )
    except MaxTurnsExceeded:
        return ""
    return str(result.final_output or "")


class AgentsMathWorkflow(Workflow):
    name: str = "openai_agents_math_workflow"

    async def execute(self, workflow_task: WorkflowTask, model_tuner: ModelTuner) -> WorkflowOutput:
        base_url, api_key = model_tuner.openai_endpoint()
        async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
            answer = await solve(client, model_tuner.model_name, workflow_task.task.main_query)
        # reward=None: the configured judge (MathAnswerAsJudge) scores the final answer
        return WorkflowOutput(reward=None, metadata={"final_answer": answer})
