"""A ReActAgent that plays an environment service's game by messages.

The environment (astuner's reference server, ``guess_number``) sends the opening message through
``/create`` (``workflow_task.task.init_messages``); every reply of the agent is sent to ``/step`` as its
action, and the environment's answer ("Higher. 3 guesses left.") becomes the agent's next input, until
the environment says the episode is over. The reward comes from ``/evaluate`` via the judge
(``EnvServiceJudge``), so the workflow returns ``reward=None``.

The agent keeps one memory for the whole episode, so its earlier replies are part of each later prompt:
astuner merges the turns into one training sample, in which only the agent's own tokens are trained.
"""

from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg
from agentscope.tool import Toolkit

from astuner import ModelTuner, Workflow, WorkflowOutput, WorkflowTask

SYSTEM_PROMPT = (
    "You are playing a number guessing game. Reply with exactly one whole number and nothing else. "
    "If you are told 'Higher.', guess a larger number; if told 'Lower.', guess a smaller one."
)


class GuessNumberWorkflow(Workflow):
    name: str = "guess_number_workflow"

    async def execute(self, workflow_task: WorkflowTask, model_tuner: ModelTuner) -> WorkflowOutput:
        env = workflow_task.env
        assert env is not None, "this workflow needs task_reader.type: env_service"
        agent = ReActAgent(
            name="player",
            sys_prompt=SYSTEM_PROMPT,
            model=model_tuner,
            formatter=DashScopeChatFormatter(),
            toolkit=Toolkit(),
            memory=InMemoryMemory(),
            max_iters=1,
        )
        agent.set_console_output_enabled(False)
        observation = workflow_task.task.init_messages[-1]["content"]
        turns = 0
        while not env.is_terminated:
            reply = await agent.reply(Msg("user", observation, role="user"))
            result = await env.step(reply)
            turns += 1
            observation = result.state[-1]["content"] if result.state else ""
        return WorkflowOutput(reward=None, metadata={"turns": turns, "last_observation": observation})
