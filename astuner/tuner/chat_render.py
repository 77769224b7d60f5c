"""Render chat messages into prompt token ids with the policy's own chat template, and parse replies.

Two things make this RL-safe:

1. **Splicing.** When an earlier reply of this episode reappears in the history, its *sampled*
   token ids are put back verbatim instead of re-tokenizing its text. The template is rendered with
   a placeholder in that message's content; the text around placeholders is tokenized and the
   sampled ids are inserted. So a multi-turn prompt extends the previous prompt + reply token for
   token, and the timeline merges; what the model sees is exactly what it generated.
2. **Tools for templates without tool support.** Templates that ignore ``tools`` (SmolLM2's ChatML)
   get Hermes-style instructions in the system message, assistant tool calls rendered as
   ``<tool_call>{json}</tool_call>`` and tool results as ``<tool_response>`` user turns. Replies
   are parsed from the same ``<tool_call>`` form either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TOOL_INSTRUCTIONS = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""

_SLOT = "<<<astuner-slot-{}>>>"
_SLOT_RE = re.compile(r"<<<astuner-slot-(\d+)>>>")
_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style blocks
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return str(content)


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def tool_parameters(tools: Sequence[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """The JSON-schema parameters of each offered tool, by name (OpenAI-style tool list)."""
    return {
        t["function"]["name"]: t["function"].get("parameters") or {"type": "object"}
        for t in tools or []
        if isinstance(t, dict) and "function" in t
    }


def turn_key(text: str, tool_calls: Sequence[tuple[str, Any]]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Identity of an assistant turn as AgentScope hands it back: its text and its tool calls."""
    return text.strip(), tuple((name, canonical_json(args)) for name, args in tool_calls)


def message_key(message: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    calls = [
        (c["function"]["name"], _arguments(c["function"].get("arguments")))
        for c in message.get("tool_calls") or []
        if isinstance(c, dict) and "function" in c
    ]
    return turn_key(_content_text(message.get("content")), calls)


@dataclass
class SampledTurn:
    """An earlier reply of this episode: its identity, the ids to put back, and its decoded text."""

    key: tuple[str, tuple[tuple[str, str], ...]]
    ids: list[int]
    text: str = ""


@dataclass
class RenderedPrompt:
    """A rendered prompt.

    Attributes:
        spliced: earlier replies put back as their sampled ids.
        drift: earlier replies that reappear as text and re-tokenize into other ids than sampled.
    """

    ids: list[int]
    text: str
    spliced: int = 0
    drift: int = 0


@dataclass
class ParsedToolCall:
    """A ``<tool_call>`` from a reply; ``error`` is set when it cannot be used as is."""

    name: str | None
    arguments: Any
    raw: str
    error: str | None = None


@dataclass
class ParsedReply:
    text: str
    tool_calls: list[ParsedToolCall] = field(default_factory=list)


class ChatRenderer:
    """Renders with ``tokenizer.apply_chat_template`` and parses Hermes-style tool calls.

    Args:
        tokenizer: the policy's Hugging Face tokenizer (with a chat template).
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the model's tokenizer has no chat template; astuner needs one to render agent messages")
        self.native_tools = self._template_renders_tools()

    def _template_renders_tools(self) -> bool:
        probe = [{"role": "user", "content": "hi"}]
        tool = {"type": "function", "function": {"name": "probe_tool_xyz", "description": "d", "parameters": {}}}
        with_tools = self.tokenizer.apply_chat_template(probe, tools=[tool], tokenize=False, add_generation_prompt=True)
        return "probe_tool_xyz" in with_tools

    # ---- rendering -------------------------------------------------------------------------
    def render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        turns: Sequence[SampledTurn] = (),
        splice: bool = True,
    ) -> RenderedPrompt:
        """Token ids of the prompt for ``messages`` (+ ``tools``), splicing earlier sampled turns.

        ``splice=False`` renders every message from text (to measure what splicing saves).
        """
        pending = list(turns)
        slots: list[list[int]] = []
        prepared: list[dict[str, Any]] = []
        for message in messages:
            role = message.get("role")
            if role == "assistant":
                key = message_key(message)
                match = next((t for t in pending if t.key == key), None) if splice else None
                if match is not None:
                    pending.remove(match)
                    prepared.append({"role": "assistant", "content": _SLOT.format(len(slots))})
                    slots.append(match.ids)
                    continue
                prepared.append(self._assistant(message))
            elif role == "tool" and not self.native_tools:
                block = f"<tool_response>\n{_content_text(message.get('content'))}\n</tool_response>"
                if prepared and prepared[-1].get("_tool_results"):
                    prepared[-1]["content"] += "\n" + block
                else:
                    prepared.append({"role": "user", "content": block, "_tool_results": True})
            else:
                prepared.append({**message, "content": _content_text(message.get("content"))})
        prepared = [{k: v for k, v in m.items() if k != "_tool_results"} for m in prepared]
        if tools and not self.native_tools:
            prepared = self._with_tool_instructions(prepared, tools)
        text = self.tokenizer.apply_chat_template(
            prepared, tools=tools if (tools and self.native_tools) else None, tokenize=False, add_generation_prompt=True
        )
        rendered = self._tokenize_with_slots(text, slots)
        if rendered is None:  # the template dropped or rewrote a spliced message: render it as plain text
            return self.render(messages, tools, turns, splice=False)
        rendered.drift = sum(1 for t in pending if t.text.strip() and t.text in text and self.encode(t.text) != t.ids)
        return rendered

    def _assistant(self, message: dict[str, Any]) -> dict[str, Any]:
        text = _content_text(message.get("content"))
        calls = [c["function"] for c in message.get("tool_calls") or [] if isinstance(c, dict) and "function" in c]
        if self.native_tools:
            out: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                out["tool_calls"] = [
                    {"type": "function", "function": {"name": c["name"], "arguments": _arguments(c.get("arguments"))}}
                    for c in calls
                ]
            return out
        parts = [text] if text else []
        for c in calls:
            body = json.dumps({"name": c["name"], "arguments": _arguments(c.get("arguments"))}, ensure_ascii=False)
            parts.append(f"<tool_call>\n{body}\n</tool_call>")
        return {"role": "assistant", "content": "\n".join(parts)}

    @staticmethod
    def _with_tool_instructions(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        instructions = TOOL_INSTRUCTIONS.format(tools=listing)
        if messages and messages[0].get("role") == "system":
            head = messages[0]
            return [{**head, "content": f"{head['content']}\n\n{instructions}"}, *messages[1:]]
        return [{"role": "system", "content": instructions}, *messages]

    def _tokenize_with_slots(self, text: str, slots: list[list[int]]) -> RenderedPrompt | None:
        ids: list[int] = []
        position, used = 0, 0
        for m in _SLOT_RE.finditer(text):
            ids += self.encode(text[position : m.start()])
            ids += slots[int(m.group(1))]
            position, used = m.end(), used + 1
        ids += self.encode(text[position:])
        if used != len(slots):
            return None
        return RenderedPrompt(ids=ids, text=_SLOT_RE.sub("<sampled>", text), spliced=used)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    # ---- parsing ---------------------------------------------------------------------------
    def parse(self, text: str) -> ParsedReply:
        """Split a reply into text and ``<tool_call>`` blocks (each parsed, or marked with an error)."""
        calls: list[ParsedToolCall] = []
        for m in _TOOL_CALL_RE.finditer(text):
            calls.append(_parse_call(m.group(1), m.group(0)))
        rest = _TOOL_CALL_RE.sub("", text)
        if "<tool_call>" in rest:  # opened but never closed (e.g. cut by max_tokens)
            raw = rest[rest.index("<tool_call>") :]
            calls.append(ParsedToolCall(None, None, raw, "unclosed <tool_call>"))
            rest = rest[: rest.index("<tool_call>")]
        return ParsedReply(text=rest.strip(), tool_calls=calls)


def _parse_call(body: str, raw: str) -> ParsedToolCall:
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        return ParsedToolCall(None, None, raw, f"tool call is not valid JSON ({exc.msg})")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ParsedToolCall(None, None, raw, 'tool call must be {"name": ..., "arguments": {...}}')
    args = _arguments(obj.get("arguments", {}))
    if not isinstance(args, dict):
        return ParsedToolCall(obj["name"], args, raw, "tool call arguments must be a JSON object")
    return ParsedToolCall(obj["name"], args, raw)
