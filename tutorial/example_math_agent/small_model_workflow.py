# The main job's workflow: the tutorial's math agent (workflow.py) made able to act with a 135M model.
#
# Why beside the tutorial's own workflow: with SmolLM2-135M-Instruct the tutorial's ReActAgent never
# calls its tool (0 tool calls in 256 episodes at temperature 0.7, and none in greedy validation, on the
# main job's tasks), so RL has no action to reinforce. Two AgentScope features every small-model agent
# can use fix that, and nothing else changes (same ReActAgent, same sandboxed python tool, same judge):
# - a worked example in the agent's memory, before the question: one exchange in which the agent calls
#   the python tool, reads its output, and answers. The model sees the tool protocol in its own chat
#   format, as real turns, which a small model imitates far better than instructions in a system prompt
#   (an example written into the system prompt gave 0 tool calls too);
# - structured replies (`agent.reply(msg, structured_model=MathResult)`): each reasoning step must then
#   call a tool, either the python tool or AgentScope's answer tool (`generate_response`), and the answer
#   arrives in the reply's metadata as `result`.
# The example's answer turn also says the answer in words, unboxed ("Ana packs 408 pens."), beside the
# answer tool's call. Measured before any training (3 steps of 48 episodes, `debug.rollout_only`): 27 of
# 144 sampled episodes then boxed their `result`, against 17 of 144 and 8 of 192 without the sentence,
# and greedy decoding boxed 1 of 32 (0 without). Boxed in the sentence too ("Ana packs \\boxed{408}
# pens."), 13 of 32 greedy answers were boxed before training: the prompt would do what RL is to show.
# The system prompt is the tutorial's, with `\boxed{}` written as the model is meant to read it: the
# tutorial's plain (not formatted) string shows the model `\boxed{{}}`.
# --8<-- [start:workflow]
from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg, TextBlock, ToolResultBlock, ToolUseBlock
from agentscope.tool import Toolkit
from pydantic import BaseModel, Field

from astuner import ModelTuner, Workflow, WorkflowOutput, WorkflowTask
from astuner.tool import execute_python_code

SYSTEM_PROMPT = """
You are an agent specialized in solving math problems with tools.
Please solve the math problem given to you.
You can write and execute Python code to perform calculation or verify your answer.
You should return your final answer within \\boxed{}.
"""


class MathResult(BaseModel):
    """The agent's final answer (AgentScope's answer tool takes it as its arguments)."""

    result: str = Field(description="The final answer, within \\boxed{}.")


def worked_example() -> list[Msg]:
    """One solved problem as real turns: the question, a python call, its output, the boxed answer."""
    question = "Ana packs 12 boxes with 34 pens in each box. How many pens does Ana pack?"
    code = ToolUseBlock(type="tool_use", id="example_1", name="execute_python_code", input={"code": "print(12 * 34)"})
    output = "<returncode>0</returncode><stdout>408\n</stdout><stderr></stderr>"
    ran = ToolResultBlock(
        type="tool_result", id="example_1", name="execute_python_code", output=[TextBlock(type="text", text=output)]
    )
    answer = ToolUseBlock(type="tool_use", id="example_2", name="generate_response", input={"result": "\\boxed{408}"})
    done = ToolResultBlock(
        type="tool_result",
        id="example_2",
        name="generate_response",
        output=[TextBlock(type="text", text="Successfully generated response.")],
    )
    return [
        Msg("user", question, role="user"),
        Msg("math_react_agent", [code], role="assistant"),
        Msg("system", [ran], role="system"),
        Msg("math_react_agent", [TextBlock(type="text", text="Ana packs 408 pens."), answer], role="assistant"),
        Msg("system", [done], role="system"),
    ]


def final_answer(reply: Msg) -> str:
    """The answer handed in through the answer tool (the reply's metadata); the reply's text when the agent
    never called it. Not imported from the tutorial's workflow.py: a module named ``workflow`` is a name
    another project's workflow may already hold in the same process."""
    metadata = reply.metadata if isinstance(reply.metadata, dict) else {}
    return str(metadata.get("result") or reply.get_text_content() or "")


class SmallModelMathAgentWorkflow(Workflow):
    name: str = "small_model_math_agent_workflow"

    async def execute(self, workflow_task: WorkflowTask, model_tuner: ModelTuner) -> WorkflowOutput:
        toolkit = Toolkit()
        toolkit.register_tool_function(execute_python_code)
        agent = ReActAgent(
            name="math_react_agent",
            sys_prompt=SYSTEM_PROMPT,
            model=model_tuner,
            formatter=DashScopeChatFormatter(),
            toolkit=toolkit,
            memory=InMemoryMemory(),
            max_iters=2,
        )
        agent.set_console_output_enabled(False)
        await agent.memory.add(worked_example())
        msg = Msg("user", workflow_task.task.main_query, role="user")
        result = await agent.reply(msg, structured_model=MathResult)
        return WorkflowOutput(reward=None, metadata={"final_answer": final_answer(result)})


# --8<-- [end:workflow]
