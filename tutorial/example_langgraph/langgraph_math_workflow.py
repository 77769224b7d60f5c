"""A math agent written as a LangGraph ReAct graph (``langchain-openai``'s ChatOpenAI), trained by astuner.

The graph is plain LangGraph: an ``agent`` node calling the model, a ``ToolNode`` running the
python tool, and an edge back while the model calls tools. Its ChatOpenAI points at the episode's
OpenAI-compatible endpoint (``model_tuner.openai_endpoint()``), so every model call is rendered,
sampled and recorded token-exactly by astuner, as for a ModelTuner agent.

The first call forces a tool call (``tool_choice="required"``): the small embedded model never
calls a tool on its own, and constrained decoding makes it write a valid call.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from astuner import ModelTuner, Workflow, WorkflowOutput, WorkflowTask
from astuner.tool import run_sandboxed

SYSTEM_PROMPT = (
    "You are an agent specialized in solving math problems with tools. "
    "You can write and execute Python code to perform calculation or verify your answer. "
    "You should return your final answer within \\boxed{}."
)
MAX_TURNS = 3  # model calls per episode


@tool
async def execute_python_code(code: str) -> str:
    """Run Python code and return what it prints."""
    result = await run_sandboxed(code, timeout=10)  # astuner's sandbox: model-written code stays contained
    return (result.stdout + result.stderr).strip() or "(no output)"


# The schema the model sees: the tool's own, with maxLength so that a constrained call closes within max_tokens.
TOOL_SCHEMA = convert_to_openai_tool(execute_python_code)
TOOL_SCHEMA["function"]["parameters"]["properties"]["code"]["maxLength"] = 80


def build_graph(llm: ChatOpenAI):
    """agent -> tools -> agent ... until the model answers without a tool call (or MAX_TURNS calls)."""
    first, then = llm.bind_tools([TOOL_SCHEMA], tool_choice="required"), llm.bind_tools([TOOL_SCHEMA])

    async def agent(state: MessagesState) -> dict:
        calls = sum(isinstance(m, AIMessage) for m in state["messages"])
        return {"messages": [await (first if calls == 0 else then).ainvoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        last, calls = state["messages"][-1], sum(isinstance(m, AIMessage) for m in state["messages"])
        return "tools" if last.tool_calls and calls < MAX_TURNS else END

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([execute_python_code]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile()


class LangGraphMathWorkflow(Workflow):
    name: str = "langgraph_math_workflow"

    async def execute(self, workflow_task: WorkflowTask, model_tuner: ModelTuner) -> WorkflowOutput:
        base_url, api_key = model_tuner.openai_endpoint()
        llm = ChatOpenAI(model=model_tuner.model_name, base_url=base_url, api_key=api_key, max_retries=0)
        state = await build_graph(llm).ainvoke(
            {"messages": [("system", SYSTEM_PROMPT), ("user", workflow_task.task.main_query)]}
        )
        last = state["messages"][-1]
        answer = "" if last.tool_calls else str(last.content)  # cut off while still calling tools: no answer
        # reward=None: the configured judge (MathAnswerAsJudge) scores the final answer
        return WorkflowOutput(reward=None, metadata={"final_answer": answer})
