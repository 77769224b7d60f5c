"""A small OpenAI SDK workflow (free tool choice, no system prompt), standalone so that it can be named
by path in a YAML and imported in a backbone's worker process (verl's AgentLoopWorker actor)."""

import openai

from astuner import Workflow, WorkflowOutput

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_python_code",
            "description": "Run code.",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        },
    }
]
ENDPOINTS: list[tuple[str, str]] = []


class SdkLoop(Workflow):
    """Ask with tools until the model answers without a tool call (at most 3 calls); tools answer "2"."""

    async def execute(self, workflow_task, model_tuner):
        base_url, api_key = model_tuner.as_oai_baseurl_apikey()  # the predecessor's name still works
        ENDPOINTS.append((base_url, api_key))
        async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as oai:
            messages = [{"role": "user", "content": workflow_task.task.main_query}]
            for _ in range(3):
                r = await oai.chat.completions.create(model="policy", messages=messages, tools=TOOLS)
                message = r.choices[0].message
                messages.append(message.model_dump(exclude_none=True))
                if not message.tool_calls:
                    break
                for call in message.tool_calls:
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": "2"})
        return WorkflowOutput(metadata={"final_answer": message.content})
