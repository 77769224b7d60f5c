"""ModelTuner: the AgentScope chat model whose replies come from the policy being trained.

A workflow passes it to its agents like any AgentScope model (``ReActAgent(model=model_tuner, ...)``).
Underneath, each call renders the formatted messages and tool schemas with the policy's chat
template into token ids, asks the engine for token ids and logprobs, records the call exactly, and
returns AgentScope content blocks (text and tool calls). One ModelTuner serves one episode.

Per-call arguments are honoured or rejected, never dropped: ``temperature``, ``top_p``, ``top_k``
and ``max_tokens`` override the configured sampling for that call; ``tool_choice`` ``"required"`` or a
tool name constrains decoding to valid ``<tool_call>`` blocks (engine-side structured output);
``"none"`` returns any tool call as plain text; ``structured_model`` constrains the reply to the
model's JSON schema and returns the parsed object as the response metadata.

The same episode can also be reached through an OpenAI-compatible endpoint
(``base_url, api_key = model_tuner.openai_endpoint()``): both go through one ``EpisodeLLM``, so
what is rendered, sampled, parsed and recorded does not depend on the client.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from agentscope.message import TextBlock, ToolUseBlock
from agentscope.model import ChatModelBase, ChatResponse
from agentscope.model._model_usage import ChatUsage

from astuner.config.view import ComposedConfig
from astuner.context.types import LLMCall
from astuner.engine.protocol import Engine
from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.episode_llm import EpisodeLLM, TunerSettings, TurnLimitReached

__all__ = ["ModelTuner", "TunerSettings", "TurnLimitReached"]

SAMPLING_KWARGS = ("temperature", "top_p", "top_k", "max_tokens")


class ModelTuner(ChatModelBase):
    """The trainable model handed to a workflow.

    Args:
        engine: token-in/token-out inference (see ``astuner.engine.protocol``).
        renderer: the policy's chat template and tool-call parser.
        settings: sampling and length limits.
        model_name: reported to AgentScope, and the model id the OpenAI endpoint serves.
        episode_id: names the episode (per-request seeds derive from it).
        config: the run's whole config, read-only (``model_tuner.config.astuner.rollout.max_model_len``,
            ``model_tuner.config.<your_section>.<key>``); None outside a run.
    """

    def __init__(
        self,
        engine: Engine,
        renderer: ChatRenderer,
        settings: TunerSettings,
        model_name: str = "policy",
        episode_id: str = "",
        config: ComposedConfig | None = None,
    ):
        super().__init__(model_name, stream=False)
        self.episode_id = episode_id
        self.config = config
        self.llm = EpisodeLLM(engine, renderer, settings, episode_id)
        self._endpoint: tuple[str, str] | None = None
        self._gateway_key: str | None = None

    # the episode's record lives in the shared core; these keep ModelTuner's own surface
    engine = property(lambda self: self.llm.engine)
    renderer = property(lambda self: self.llm.renderer)
    settings = property(lambda self: self.llm.settings)
    calls: list[LLMCall] = property(lambda self: self.llm.calls)  # type: ignore[assignment]
    context_overflow = property(lambda self: self.llm.context_overflow)
    turn_limit_reached = property(lambda self: self.llm.turn_limit_reached)

    @property
    def calls_left(self) -> int | None:
        """LLM calls this episode may still make (``rollout.multi_turn.max_steps``); None: no limit."""
        return self.llm.calls_left

    def openai_endpoint(self) -> tuple[str, str]:
        """``(base_url, api_key)`` of an OpenAI-compatible endpoint that reaches only this episode.

        Call it inside ``execute`` (it binds the endpoint to the running event loop). The process's
        gateway starts on first use (127.0.0.1, a free port, a per-process secret key); the endpoint
        closes when the episode's workflow returns, after which requests get 409.

        Example:
            >>> base_url, api_key = model_tuner.openai_endpoint()  # doctest: +SKIP
            >>> client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key)  # doctest: +SKIP
        """
        if self._endpoint is None:
            from astuner.gateway import shared_gateway

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "model_tuner.openai_endpoint() must be called inside the workflow's async execute(): "
                    "the endpoint serves the episode on its running event loop"
                ) from None
            gateway = shared_gateway()
            self._gateway_key = gateway.register(self.llm, self.model_name, loop)
            self._endpoint = (gateway.base_url(self._gateway_key), gateway.api_key)
        return self._endpoint

    as_oai_baseurl_apikey = openai_endpoint  # the predecessor's name, so its workflows move over unchanged

    def close(self) -> None:
        """End the episode's OpenAI endpoint (if one was opened): later requests get 409."""
        if self._gateway_key is not None:
            from astuner.gateway import shared_gateway

            shared_gateway().unregister(self._gateway_key)
            self._gateway_key = None

    async def __call__(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        structured_model: Any = None,
        **kwargs: Any,
    ) -> ChatResponse:
        self.llm.check_turn_limit()
        unknown = sorted(set(kwargs) - set(SAMPLING_KWARGS))
        if unknown:
            raise TypeError(
                f"ModelTuner does not support the argument(s) {', '.join(unknown)}; "
                f"supported per-call arguments: {', '.join(SAMPLING_KWARGS)}, tool_choice, structured_model"
            )
        if structured_model is not None and tool_choice not in (None, "auto", "none"):
            raise ValueError("ModelTuner cannot combine structured_model with tool_choice=" + repr(tool_choice))
        schema = structured_model.model_json_schema() if structured_model is not None else None
        reply = await self.llm.chat(messages, tools, tool_choice, schema, **kwargs)
        call = reply.call
        if reply.finish_reason == "context_overflow":
            return ChatResponse(content=[TextBlock(type="text", text="")], metadata={"astuner_context_overflow": True})
        if schema is not None:
            response = ChatResponse(content=[TextBlock(type="text", text=reply.text)], metadata=reply.parsed_json)
        else:
            blocks: list[Any] = [TextBlock(type="text", text=reply.content)] if reply.content else []
            blocks += [
                ToolUseBlock(type="tool_use", id=f"call_{uuid.uuid4().hex[:16]}", name=c.name, input=c.arguments)
                for c in reply.tool_calls
            ]
            response = ChatResponse(content=blocks or [TextBlock(type="text", text="")])
        response.usage = ChatUsage(
            input_tokens=len(call.prompt_ids), output_tokens=len(call.response_ids), time=call.t_end - call.t_start
        )
        return response
