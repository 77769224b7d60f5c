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
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from agentscope.message import TextBlock, ToolUseBlock
from agentscope.model import ChatModelBase, ChatResponse
from agentscope.model._model_usage import ChatUsage

from astuner.config.view import ComposedConfig
from astuner.context.types import LLMCall, jsonable
from astuner.engine.protocol import Engine, SamplingParams
from astuner.rollout.madness import nonsense_reason, toolcall_reason
from astuner.tuner.chat_render import ChatRenderer, SampledTurn, tool_parameters, turn_key

SAMPLING_KWARGS = ("temperature", "top_p", "top_k", "max_tokens")


@dataclass(frozen=True)
class TunerSettings:
    """Sampling and length limits for one episode's calls.

    Attributes:
        temperature / top_p / top_k: default sampling (per-call kwargs override them).
        max_model_len: the engine's context length.
        max_tokens_per_turn: most tokens one call may generate (``rollout.max_response_length_in_one_turn``).
        seed: when set, each request gets a seed derived from it, the episode id and the call index.
        max_calls: most LLM calls of the episode (``rollout.multi_turn.max_steps``); 0 is no limit.
    """

    temperature: float
    max_model_len: int
    max_tokens_per_turn: int
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    max_calls: int = 0


class TurnLimitReached(Exception):
    """A workflow called the model after ``rollout.multi_turn.max_steps`` calls: the episode ends here."""


class ModelTuner(ChatModelBase):
    """The trainable model handed to a workflow.

    Args:
        engine: token-in/token-out inference (see ``astuner.engine.protocol``).
        renderer: the policy's chat template and tool-call parser.
        settings: sampling and length limits.
        model_name: reported to AgentScope.
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
        self.turn_limit_reached = False
        self.engine = engine
        self.renderer = renderer
        self.settings = settings
        self.calls: list[LLMCall] = []
        self.context_overflow = False
        self._turns: list[SampledTurn] = []
        tok = renderer.tokenizer
        self._eos = {i for i in [tok.eos_token_id, getattr(tok, "pad_token_id", None)] if i is not None}
        # The engine stops on the model's generation-config EOS, which can differ from the tokenizer's
        # (a GGUF conversion with another transformers version named <|im_start|> the EOS): a special
        # token that ended a completion is never part of the message text.
        added = getattr(tok, "added_tokens_decoder", {}) or {}
        self._special_ids = set(getattr(tok, "all_special_ids", []) or []) | {
            i for i, t in added.items() if getattr(t, "special", False)
        }
        self._special = [t for t in getattr(tok, "all_special_tokens", []) if t]

    @property
    def calls_left(self) -> int | None:
        """LLM calls this episode may still make (``rollout.multi_turn.max_steps``); None: no limit."""
        if not self.settings.max_calls:
            return None
        return max(0, self.settings.max_calls - len(self.calls))

    async def __call__(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        structured_model: Any = None,
        **kwargs: Any,
    ) -> ChatResponse:
        if self.calls_left == 0:
            self.turn_limit_reached = True
            raise TurnLimitReached(
                f"episode {self.episode_id}: rollout.multi_turn.max_steps = {self.settings.max_calls} LLM calls reached"
            )
        unknown = sorted(set(kwargs) - set(SAMPLING_KWARGS))
        if unknown:
            raise TypeError(
                f"ModelTuner does not support the argument(s) {', '.join(unknown)}; "
                f"supported per-call arguments: {', '.join(SAMPLING_KWARGS)}, tool_choice, structured_model"
            )
        structured = self._constraint(tools, tool_choice, structured_model)
        started = time.time()
        rendered = self.renderer.render(messages, tools, self._turns)
        prompt = rendered.ids
        budget = self.settings.max_model_len - len(prompt)
        if len(prompt) > self.settings.max_model_len - self.settings.max_tokens_per_turn:
            self.context_overflow = True
            self._record(prompt, [], [], "context_overflow", messages, tools, "", rendered, {}, started)
            return ChatResponse(content=[TextBlock(type="text", text="")], metadata={"astuner_context_overflow": True})
        sampling = SamplingParams(
            max_tokens=min(int(kwargs.get("max_tokens", self.settings.max_tokens_per_turn)), budget),
            temperature=float(kwargs.get("temperature", self.settings.temperature)),
            top_p=float(kwargs.get("top_p", self.settings.top_p)),
            top_k=int(kwargs.get("top_k", self.settings.top_k)),
            structured=structured,
            seed=self._request_seed(),
        )
        completion = await self.engine.generate(prompt, sampling)
        ids = completion.token_ids
        ends_on_special = completion.finish_reason == "stop" and bool(ids) and ids[-1] in self._special_ids
        content_ids = ids[:-1] if ids and (ids[-1] in self._eos or ends_on_special) else ids
        text = self.renderer.tokenizer.decode(content_ids, skip_special_tokens=False)
        response, madness = self._response(text, content_ids, tools, tool_choice, structured_model)
        call = self._record(
            prompt,
            ids,
            completion.logprobs,
            completion.finish_reason,
            messages,
            tools,
            text,
            rendered,
            madness,
            started,
        )
        response.usage = ChatUsage(input_tokens=len(prompt), output_tokens=len(ids), time=call.t_end - started)
        return response

    def _request_seed(self) -> int | None:
        if self.settings.seed is None:
            return None
        digest = hashlib.sha256(f"{self.settings.seed}/{self.episode_id}/{len(self.calls)}".encode()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF

    def _constraint(self, tools: list[dict[str, Any]] | None, tool_choice: str | None, structured_model: Any):
        if structured_model is not None:
            if tool_choice not in (None, "auto", "none"):
                raise ValueError("ModelTuner cannot combine structured_model with tool_choice=" + repr(tool_choice))
            return {"json": structured_model.model_json_schema()}
        parameters = tool_parameters(tools)
        names = list(parameters)
        if tool_choice in (None, "auto", "none"):
            return None
        if tool_choice != "required" and tool_choice not in names:
            raise ValueError(
                f"tool_choice={tool_choice!r} is neither 'auto', 'none', 'required' nor one of the "
                f"offered tools ({', '.join(names) or 'none'})"
            )
        if not names:
            raise ValueError(f"tool_choice={tool_choice!r} but no tools were offered")
        chosen = names if tool_choice == "required" else [tool_choice]
        tags = [
            {
                "type": "tag",
                "begin": '<tool_call>\n{"name": ' + json.dumps(n) + ', "arguments": ',
                "content": {"type": "json_schema", "json_schema": parameters[n]},
                "end": "}\n</tool_call>",
            }
            for n in chosen
        ]
        # "required": at least one call (several allowed); a named tool: exactly one call, then the reply ends.
        fmt = {
            "type": "triggered_tags",
            "triggers": ["<tool_call>"],
            "tags": tags,
            "at_least_one": True,
            "stop_after_first": tool_choice != "required",
        }
        return {"structural_tag": json.dumps({"type": "structural_tag", "format": fmt})}

    def _response(self, text, content_ids, tools, tool_choice, structured_model) -> tuple[ChatResponse, dict[str, str]]:
        madness: dict[str, str] = {}
        reason = nonsense_reason(content_ids, text, self._special)
        if reason:
            madness["nonsense"] = reason
        if structured_model is not None:
            try:
                parsed_obj = json.loads(text)
            except json.JSONDecodeError:
                parsed_obj = None
            self._turns.append(SampledTurn(turn_key(text, []), content_ids, text))
            return ChatResponse(content=[TextBlock(type="text", text=text)], metadata=parsed_obj), madness
        parsed = self.renderer.parse(text)
        if tool_choice == "none" or not parsed.tool_calls:
            if parsed.tool_calls and tools:
                madness.setdefault("wrong_toolcall", "called a tool with tool_choice='none'")
            self._turns.append(SampledTurn(turn_key(text, []), content_ids, text))
            return ChatResponse(content=[TextBlock(type="text", text=text)]), madness
        reason = toolcall_reason(parsed.tool_calls, tools)
        if reason:
            madness["wrong_toolcall"] = reason
        usable = [c for c in parsed.tool_calls if c.name is not None and isinstance(c.arguments, dict)]
        shown = parsed.text if len(usable) == len(parsed.tool_calls) else text  # keep a broken call visible
        blocks: list[Any] = [TextBlock(type="text", text=shown)] if shown else []
        blocks += [
            ToolUseBlock(type="tool_use", id=f"call_{uuid.uuid4().hex[:16]}", name=c.name, input=c.arguments)
            for c in usable
        ]
        self._turns.append(SampledTurn(turn_key(shown, [(c.name, c.arguments) for c in usable]), content_ids, text))
        return ChatResponse(content=blocks or [TextBlock(type="text", text="")]), madness

    def _record(self, prompt, ids, logprobs, finish, messages, tools, text, rendered, madness, started) -> LLMCall:
        call = LLMCall(
            index=len(self.calls),
            prompt_ids=list(prompt),
            response_ids=list(ids),
            logprobs=list(logprobs),
            finish_reason=finish,
            messages=jsonable(messages),
            tools=jsonable(tools),
            response_text=text,
            spliced=rendered.spliced,
            drift=rendered.drift,
            madness=madness,
            t_start=started,
            t_end=time.time(),
        )
        self.calls.append(call)
        return call
