"""Madness checks: model output that should not be rewarded however the episode ended.

- ``nonsense``: special tokens leaking into the text, degenerate repetition, garbage characters.
- ``wrong_toolcall``: a ``<tool_call>`` that does not parse, names an unknown tool, or whose
  arguments do not fit the tool's JSON schema (missing required, unknown or mistyped parameters).

A triggered check listed in ``rollout.compute_madness_checklist`` sets the episode's reward to
``rollout.agent_madness_reward``; every trigger is recorded on the call with its reason.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from astuner.tuner.chat_render import ParsedToolCall, tool_parameters

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def repetition_reason(ids: Sequence[int], min_repeats: int = 8, max_period: int = 32, min_span: int = 64) -> str | None:
    """A reason if the reply ends in one short pattern repeated over and over (e.g. 'the the the ...')."""
    for trim in range(4):  # a reply often ends with a stray token after the loop ("the the the the ")
        reason = _tail_repetition(ids[: len(ids) - trim], min_repeats, max_period, min_span)
        if reason:
            return reason
    return None


def _tail_repetition(ids: Sequence[int], min_repeats: int, max_period: int, min_span: int) -> str | None:
    n = len(ids)
    for period in range(1, max_period + 1):
        if n < period * min_repeats:
            break
        tail = ids[n - period :]
        repeats, pos = 1, n - 2 * period
        while pos >= 0 and list(ids[pos : pos + period]) == list(tail):
            repeats, pos = repeats + 1, pos - period
        if repeats >= min_repeats and repeats * period >= min(min_span, n):
            return f"the last {repeats * period} tokens repeat a {period}-token pattern {repeats} times"
    return None


def garbage_reason(text: str, max_fraction: float = 0.1) -> str | None:
    """A reason if too much of the text is replacement/control/private-use characters."""
    if not text:
        return None
    bad = sum(
        1 for ch in text if ch == "\ufffd" or (unicodedata.category(ch) in ("Cc", "Co", "Cs") and ch not in "\n\t\r")
    )
    if bad / len(text) > max_fraction:
        return f"{bad} of {len(text)} characters are garbage (control, private-use or undecodable)"
    return None


def special_token_reason(text: str, special_tokens: Iterable[str]) -> str | None:
    leaked = sorted({t for t in special_tokens if t and t in text})
    return f"special tokens leaked into the text: {', '.join(leaked)}" if leaked else None


def nonsense_reason(ids: Sequence[int], text: str, special_tokens: Iterable[str]) -> str | None:
    """The first nonsense reason for a reply (``text`` excludes the final EOS), or None."""
    return special_token_reason(text, special_tokens) or repetition_reason(ids) or garbage_reason(text)


def _schema_errors(args: dict[str, Any], schema: dict[str, Any]) -> str | None:
    props = schema.get("properties") or {}
    missing = [k for k in schema.get("required") or [] if k not in args]
    if missing:
        return f"missing required argument(s) {', '.join(missing)}"
    unknown = [k for k in args if k not in props]
    if unknown and props and schema.get("additionalProperties") is not True:
        return f"unknown argument(s) {', '.join(unknown)}"
    for key, value in args.items():
        expected = (props.get(key) or {}).get("type")
        kinds = [expected] if isinstance(expected, str) else list(expected or [])
        allowed = tuple(t for k in kinds for t in _JSON_TYPES.get(k, ()))
        if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
            return f"argument {key} = {value!r} is not of type {expected}"
    return None


def toolcall_reason(calls: Sequence[ParsedToolCall], tools: Sequence[dict[str, Any]] | None) -> str | None:
    """The first reason a reply's tool calls cannot be executed as written, or None."""
    schemas = tool_parameters(tools)
    for call in calls:
        if call.error:
            return call.error
        if call.name not in schemas:
            known = ", ".join(sorted(schemas)) or "none offered"
            return f"unknown tool {call.name!r} (tools: {known})"
        error = _schema_errors(call.arguments, schemas[call.name])
        if error:
            return f"{call.name}: {error}"
    return None
