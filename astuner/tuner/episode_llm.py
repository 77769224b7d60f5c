"""One episode's LLM: render, sample, parse, check and record every call, token-exactly.

This is the core both front ends of an episode share: ``ModelTuner`` (an AgentScope chat model)
and the OpenAI-compatible gateway (``astuner.gateway``). Why one core: what gets trained must not
depend on how the agent reached the model. Both go through the same rendering with the policy's
chat template, the same splicing of earlier sampled replies (by their sampled ids), the same
context-overflow handling, tool-call parser, madness checks and record, so an episode driven
through the OpenAI SDK yields the very samples a ModelTuner episode of the same conversation does.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from astuner.context.types import LLMCall, jsonable
from astuner.engine.protocol import Engine, SamplingParams
from astuner.rollout.madness import nonsense_reason, toolcall_reason
from astuner.tuner.chat_render import (
    ChatRenderer,
    ParsedToolCall,
    RenderedPrompt,
    SampledTurn,
    tool_parameters,
    turn_key,
)


@dataclass(frozen=True)
class TunerSettings:
    """Sampling and length limits for one episode's calls.

    Attributes:
        temperature / top_p / top_k: default sampling (per-call values override them).
        max_model_len: the engine's context length.
        max_tokens_per_turn: most tokens one call may generate (``rollout.max_response_length_in_one_turn``).
        seed: when set, each request gets a seed derived from it, the episode id and the call index.
        max_calls: most LLM calls of the episode (``rollout.multi_turn.max_steps``); 0 is no limit.
        gateway_ignore: OpenAI request parameters the gateway drops with a counted warning instead of
            answering 400 (``rollout.gateway.ignore_unsupported``).
    """

    temperature: float
    max_model_len: int
    max_tokens_per_turn: int
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    max_calls: int = 0
    gateway_ignore: tuple[str, ...] = ()


class TurnLimitReached(Exception):
    """A workflow called the model after ``rollout.multi_turn.max_steps`` calls: the episode ends here."""


@dataclass
class Reply:
    """What one call produced, before a front end formats it.

    Attributes:
        text: the decoded reply (without a final EOS/special stop token).
        content: the text to show the agent: ``text`` without its tool calls when all of them parsed,
            the whole ``text`` when one did not (a broken call stays visible, as vLLM returns it).
        tool_calls: the usable tool calls (parsed name and dict arguments).
        finish_reason: the engine's (``stop``, ``length``) or ``context_overflow`` (nothing was sent).
        call: the record of the call.
        parsed_json: with a JSON-schema constraint, the parsed reply (None if it did not parse).
    """

    text: str
    content: str
    finish_reason: str
    call: LLMCall
    tool_calls: list[ParsedToolCall] = field(default_factory=list)
    parsed_json: Any = None


class EpisodeLLM:
    """The recorded, token-exact model of one episode.

    Args:
        engine: token-in/token-out inference (see ``astuner.engine.protocol``).
        renderer: the policy's chat template and tool-call parser.
        settings: sampling and length limits.
        episode_id: names the episode (per-request seeds derive from it).
    """

    def __init__(self, engine: Engine, renderer: ChatRenderer, settings: TunerSettings, episode_id: str = ""):
        self.engine, self.renderer, self.settings, self.episode_id = engine, renderer, settings, episode_id
        self.calls: list[LLMCall] = []
        self.context_overflow = False
        self.turn_limit_reached = False
        # counted per episode into Episode.metrics (and summed per step into metrics.jsonl)
        self.counters: dict[str, int] = {"gateway_ignored_params": 0}
        self.turns: list[SampledTurn] = []
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

    def check_turn_limit(self) -> None:
        """Raise ``TurnLimitReached`` (and flag the episode) when no call is left."""
        if self.calls_left == 0:
            self.turn_limit_reached = True
            raise TurnLimitReached(
                f"episode {self.episode_id}: rollout.multi_turn.max_steps = {self.settings.max_calls} LLM calls reached"
            )

    async def chat(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        json_schema: dict[str, Any] | None = None,
        **sampling: Any,
    ) -> Reply:
        """One chat call: OpenAI-style ``messages``/``tools``; ``tool_choice`` None, auto, none, required or a
        tool's name; ``json_schema`` constrains the reply; ``sampling``: temperature, top_p, top_k, max_tokens.

        Raises:
            TurnLimitReached: no call left. ValueError: an impossible ``tool_choice``.
        """
        self.check_turn_limit()
        structured = self.constraint(tools, tool_choice, json_schema)
        started = time.time()
        rendered = self.renderer.render(messages, tools, self.turns)
        sampled = await self._sample(rendered, structured, sampling, started, messages, tools)
        if isinstance(sampled, Reply):
            return sampled
        ids, logprobs, finish, content_ids, text = sampled
        madness: dict[str, str] = {}
        reason = nonsense_reason(content_ids, text, self._special)
        if reason:
            madness["nonsense"] = reason
        reply = self._parse(text, content_ids, tools, tool_choice, json_schema, madness)
        reply.finish_reason = finish
        reply.call = self._record(rendered, ids, logprobs, finish, messages, tools, text, madness, started)
        reply.call.tool_call_parse_failures = sum(1 for c in reply.tool_calls if c.error)
        reply.tool_calls = [c for c in reply.tool_calls if not c.error]
        reply.call.tool_calls = len(reply.tool_calls)
        reply.call.tool_names = [str(c.name) for c in reply.tool_calls]
        return reply

    async def complete(self, prompt_ids: list[int], **sampling: Any) -> Reply:
        """One raw completion of ``prompt_ids`` (no chat template, no tool parsing); recorded like a chat call."""
        self.check_turn_limit()
        started = time.time()
        rendered = RenderedPrompt(ids=list(prompt_ids), text="")
        sampled = await self._sample(rendered, None, sampling, started, [], None)
        if isinstance(sampled, Reply):
            return sampled
        ids, logprobs, finish, content_ids, text = sampled
        reason = nonsense_reason(content_ids, text, self._special)
        madness = {"nonsense": reason} if reason else {}
        call = self._record(rendered, ids, logprobs, finish, [], None, text, madness, started)
        return Reply(text=text, content=text, finish_reason=finish, call=call)

    async def _sample(self, rendered, structured, sampling, started, messages, tools):
        """Send the prompt (or record a context overflow); returns the sampled pieces or the overflow Reply."""
        prompt = rendered.ids
        s = self.settings
        if len(prompt) > s.max_model_len - s.max_tokens_per_turn:
            self.context_overflow = True
            call = self._record(rendered, [], [], "context_overflow", messages, tools, "", {}, started)
            return Reply(text="", content="", finish_reason="context_overflow", call=call)
        params = SamplingParams(
            max_tokens=min(int(sampling.get("max_tokens") or s.max_tokens_per_turn), s.max_model_len - len(prompt)),
            temperature=float(sampling.get("temperature", s.temperature)),
            top_p=float(sampling.get("top_p", s.top_p)),
            top_k=int(sampling.get("top_k", s.top_k)),
            structured=structured,
            seed=self._request_seed(),
        )
        completion = await self.engine.generate(prompt, params)
        ids = completion.token_ids
        ends_on_special = completion.finish_reason == "stop" and bool(ids) and ids[-1] in self._special_ids
        content_ids = ids[:-1] if ids and (ids[-1] in self._eos or ends_on_special) else ids
        text = self.renderer.tokenizer.decode(content_ids, skip_special_tokens=False)
        return ids, completion.logprobs, completion.finish_reason, content_ids, text

    def _request_seed(self) -> int | None:
        if self.settings.seed is None:
            return None
        digest = hashlib.sha256(f"{self.settings.seed}/{self.episode_id}/{len(self.calls)}".encode()).digest()
        return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF

    @staticmethod
    def constraint(tools: list[dict[str, Any]] | None, tool_choice: str | None, json_schema: dict[str, Any] | None):
        """The engine-side structured-output constraint for ``tool_choice`` / ``json_schema`` (None: free)."""
        if json_schema is not None:
            if tool_choice not in (None, "auto", "none"):
                raise ValueError("a JSON-schema reply cannot be combined with tool_choice=" + repr(tool_choice))
            return {"json": json_schema}
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

    def _parse(self, text, content_ids, tools, tool_choice, json_schema, madness) -> Reply:
        """Split the reply into shown text and tool calls, flag wrong calls, remember the turn for splicing.

        The returned ``tool_calls`` still hold the unparsable ones (``error`` set) so the caller counts them.
        """
        blank = Reply(text=text, content=text, finish_reason="", call=None)  # type: ignore[arg-type]
        if json_schema is not None:
            try:
                blank.parsed_json = json.loads(text)
            except json.JSONDecodeError:
                blank.parsed_json = None
            self.turns.append(SampledTurn(turn_key(text, []), content_ids, text))
            return blank
        parsed = self.renderer.parse(text)
        if tool_choice == "none" or not parsed.tool_calls:
            if parsed.tool_calls and tools:
                madness.setdefault("wrong_toolcall", "called a tool with tool_choice='none'")
            self.turns.append(SampledTurn(turn_key(text, []), content_ids, text))
            return blank
        reason = toolcall_reason(parsed.tool_calls, tools)
        if reason:
            madness["wrong_toolcall"] = reason
        # a parsed call has a name and dict arguments; any other carries its error
        usable = [c for c in parsed.tool_calls if not c.error]
        shown = parsed.text if len(usable) == len(parsed.tool_calls) else text  # keep a broken call visible
        self.turns.append(SampledTurn(turn_key(shown, [(c.name, c.arguments) for c in usable]), content_ids, text))
        return Reply(text=text, content=shown, finish_reason="", call=None, tool_calls=parsed.tool_calls)  # type: ignore[arg-type]

    def _record(self, rendered, ids, logprobs, finish, messages, tools, text, madness, started) -> LLMCall:
        call = LLMCall(
            index=len(self.calls),
            prompt_ids=list(rendered.ids),
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
