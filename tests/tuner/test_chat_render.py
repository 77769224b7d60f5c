"""Rendering with the real SmolLM2 chat template, splicing of sampled turns, tool-call parsing."""

from __future__ import annotations

import json

import pytest

from astuner.context.merge import build_timelines
from astuner.context.types import LLMCall
from astuner.tuner.chat_render import ChatRenderer, SampledTurn, turn_key

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "execute_python_code",
            "description": "Run code.",
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "timeout": {"type": "number"}},
                "required": ["code"],
            },
        },
    }
]


@pytest.fixture
def renderer(smollm2_tokenizer):
    return ChatRenderer(smollm2_tokenizer)


def test_plain_messages_match_the_template(renderer, smollm2_tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"}]
    expected = smollm2_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert renderer.render(messages, None).ids == smollm2_tokenizer(expected, add_special_tokens=False)["input_ids"]


def test_template_without_tool_support_gets_hermes_instructions(renderer):
    assert renderer.native_tools is False  # SmolLM2's ChatML ignores `tools`
    text = renderer.render([{"role": "system", "content": "SYS"}, {"role": "user", "content": "q"}], TOOLS).text
    assert text.startswith("<|im_start|>system\nSYS\n\n# Tools")
    assert '"name": "execute_python_code"' in text and "<tool_call>" in text


def test_tool_calls_and_results_render_as_hermes_blocks(renderer):
    messages = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "Let me compute.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "execute_python_code", "arguments": json.dumps({"code": "print(1)"})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "name": "execute_python_code", "content": "1"},
    ]
    text = renderer.render(messages, TOOLS).text
    assert (
        '<|im_start|>assistant\nLet me compute.\n<tool_call>\n{"name": "execute_python_code", '
        '"arguments": {"code": "print(1)"}}\n</tool_call><|im_end|>' in text
    )
    assert "<|im_start|>user\n<tool_response>\n1\n</tool_response><|im_end|>" in text


def _agent_history(reply_text, call_args):
    return [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "2+3?"},
        {
            "role": "assistant",
            "content": reply_text,
            "tool_calls": [
                {
                    "id": "call_x",
                    "type": "function",
                    "function": {"name": "execute_python_code", "arguments": json.dumps(call_args)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_x", "name": "execute_python_code", "content": "5"},
    ]


def test_sampled_turn_is_spliced_so_the_next_prompt_extends_the_previous(renderer, smollm2_tokenizer):
    first = renderer.render([{"role": "system", "content": "SYS"}, {"role": "user", "content": "2+3?"}], TOOLS)
    # A reply sampled one character per token (as constrained decoding does): not the canonical tokenization.
    raw = (
        'Let me compute.\n<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(2+3)"}}'
        "\n</tool_call>"
    )
    sampled = [smollm2_tokenizer.convert_tokens_to_ids(smollm2_tokenizer.tokenize(ch))[0] for ch in raw[:8]]
    sampled += smollm2_tokenizer(raw[8:], add_special_tokens=False)["input_ids"]
    eos = smollm2_tokenizer.eos_token_id
    text = smollm2_tokenizer.decode(sampled)
    parsed = renderer.parse(text)
    key = turn_key(parsed.text, [(c.name, c.arguments) for c in parsed.tool_calls])
    history = _agent_history("Let me compute.", {"code": "print(2+3)"})
    turns = [SampledTurn(key, sampled, text)]
    second = renderer.render(history, TOOLS, turns)
    assert (second.spliced, second.drift) == (1, 0)
    assert second.ids[: len(first.ids) + len(sampled) + 1] == first.ids + sampled + [eos]
    # and the merge sees one timeline
    calls = [
        LLMCall(0, first.ids, sampled + [eos], [-1.0] * (len(sampled) + 1), "stop"),
        LLMCall(1, second.ids, [7, eos], [-1.0, -1.0], "stop"),
    ]
    timelines, drift = build_timelines(calls)
    assert (len(timelines), drift) == (1, 0)
    # without splicing the reply re-tokenizes into other ids: drift is reported, and it is a new timeline
    plain = renderer.render(history, TOOLS, turns, splice=False)
    assert (plain.spliced, plain.drift) == (0, 1)
    calls[1] = LLMCall(1, plain.ids, [7, eos], [-1.0, -1.0], "stop", drift=plain.drift)
    timelines, drift = build_timelines(calls)
    assert (len(timelines), drift) == (2, 1)


def test_edited_history_is_not_spliced(renderer):
    turn = SampledTurn(turn_key("original", []), [1, 2, 3])
    rendered = renderer.render(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "edited"}], None, [turn]
    )
    assert rendered.spliced == 0 and "edited" in rendered.text


@pytest.mark.parametrize(
    ("reply", "names", "error"),
    [
        ('x <tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', ["f"], None),
        ('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>', ["f"], None),
        ('<tool_call>{"name": "f", "arguments": {}}</tool_call><tool_call>{"name": "g"}</tool_call>', ["f", "g"], None),
        ("<tool_call>{not json}</tool_call>", [None], "not valid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', [None], '{"name": ..., "arguments": {...}}'),
        ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', ["f"], "must be a JSON object"),
        ('<tool_call>\n{"name": "f", "argum', [None], "unclosed <tool_call>"),
    ],
)
def test_parse_tool_calls(renderer, reply, names, error):
    parsed = renderer.parse(reply)
    assert [c.name for c in parsed.tool_calls] == names
    errors = [c.error for c in parsed.tool_calls if c.error]
    assert (errors[0] if errors else None) == error or (error and error in errors[0])
