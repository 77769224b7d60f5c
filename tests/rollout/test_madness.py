"""Madness checks on their own."""

from __future__ import annotations

from astuner.rollout.madness import garbage_reason, nonsense_reason, repetition_reason, toolcall_reason
from astuner.tuner.chat_render import ParsedToolCall

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": ["string", "null"]}},
                "required": ["a"],
            },
        },
    }
]


def test_repetition():
    assert repetition_reason([5] * 80)
    assert repetition_reason([1, 2, 3] * 30)
    assert repetition_reason(list(range(200))) is None
    assert repetition_reason([7] * 5) is None  # short replies are not degenerate


def test_garbage_and_special_tokens():
    assert garbage_reason("\ufffd" * 10 + "abc")
    assert garbage_reason("normal text\n\twith tabs") is None
    assert nonsense_reason([1, 2], "a <|endoftext|> b", ["<|endoftext|>"])
    assert nonsense_reason([1, 2], "fine", ["<|endoftext|>"]) is None


def test_tool_call_schema_checks():
    ok = ParsedToolCall("f", {"a": 1, "b": None}, "")
    assert toolcall_reason([ok], TOOLS) is None
    assert "unknown tool 'g'" in toolcall_reason([ParsedToolCall("g", {}, "")], TOOLS)
    assert "missing required" in toolcall_reason([ParsedToolCall("f", {}, "")], TOOLS)
    assert "unknown argument(s) c" in toolcall_reason([ParsedToolCall("f", {"a": 1, "c": 2}, "")], TOOLS)
    assert "not of type integer" in toolcall_reason([ParsedToolCall("f", {"a": "1"}, "")], TOOLS)
    assert "not of type integer" in toolcall_reason([ParsedToolCall("f", {"a": True}, "")], TOOLS)
    assert toolcall_reason([ParsedToolCall(None, None, "", "bad json")], TOOLS) == "bad json"
