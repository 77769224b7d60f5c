# --8<-- [start:changes]
# The tutorial's workflow (docs/tutorial/train_your_first_agent.md), as written there, with two changes:
# - the tutorial's `model=model_tuner # use model_tuner as model,` puts the comma inside the
#   comment, which is a SyntaxError; the comma is moved before the comment;
# - `execute_python_code` comes from astuner.tool instead of agentscope.tool: same call shape, but
#   sandboxed. During RL the policy explores, and AgentScope's version hands model-written code the
#   whole environment (API keys), open network, a timeout that child processes defeat, and hangs on
#   large outputs. astuner's kills the process group on timeout, limits CPU/memory, cuts network,
#   scrubs the environment, runs in a fresh temp folder and caps output.
# --8<-- [end:changes]
# The `--8<--` comments mark the parts the documentation site includes (pymdownx.snippets).
# --8<-- [start:workflow]
from astuner import ModelTuner, Workflow, WorkflowTask, WorkflowOutput
from agentscope.message import Msg
from loguru import logger

system_prompt = """
You are an agent specialized in solving math problems with tools.
Please solve the math problem given to you.
You can write and execute Python code to perform calculation or verify your answer.
You should return your final answer within \\boxed{{}}.
"""

def extract_final_answer(result) -> str:
    """Extract the final answer from the agent's response."""
    try:
        if (
            hasattr(result, "metadata")
            and isinstance(result.metadata, dict)
            and "result" in result.metadata
        ):
            return result.metadata["result"]
        if hasattr(result, "content"):
            if isinstance(result.content, dict) and "result" in result.content:
                return result.content["result"]
            return str(result.content)
        return str(result)
    except Exception as e:
        logger.warning(f"Extract final answer error: {e}. Raw: {result}")
        return str(result)

class MathAgentWorkflow(Workflow):
    name: str = "math_agent_workflow"

    async def execute(
        self, workflow_task: WorkflowTask, model_tuner: ModelTuner
    ) -> WorkflowOutput:
        # --8<-- [start:agent]
        from agentscope.agent import ReActAgent
        from agentscope.formatter import DashScopeChatFormatter
        from agentscope.memory import InMemoryMemory
        from agentscope.tool import Toolkit
        from astuner.tool import execute_python_code

        query = workflow_task.task.main_query
        self.toolkit = Toolkit()
        self.toolkit.register_tool_function(execute_python_code)
        self.agent = ReActAgent(
            name="math_react_agent",
            sys_prompt=system_prompt,
            model=model_tuner,  # use model_tuner as model
            formatter=DashScopeChatFormatter(),
            toolkit=self.toolkit,
            memory=InMemoryMemory(),
            max_iters=2,
        )
        # --8<-- [end:agent]
        # disable console output
        self.agent.set_console_output_enabled(False)
        msg = Msg("user", query, role="user")
        # call agent to do task
        result = await self.agent.reply(msg)
        # extract the final answer
        final_answer = extract_final_answer(result)
        # bring final answer to the output
        return WorkflowOutput(reward=None, metadata={"final_answer": final_answer})
# --8<-- [end:workflow]
