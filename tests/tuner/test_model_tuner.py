"""ModelTuner as an AgentScope model: blocks returned, per-call arguments, overflow, recording."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.model_tuner import ModelTuner, TunerSettings
from tests.conftest import ScriptedEngine
from tests.tuner.test_chat_render import TOOLS

CALL = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(2+3)"}}\n</tool_call>'


def make(tokenizer, replies, **settings):
    engine = ScriptedEngine(tokenizer, replies)
    base = {"temperature": 0.7, "max_model_len": 2048, "max_tokens_per_turn": 256}
    return ModelTuner(engine, ChatRenderer(tokenizer), TunerSettings(**{**base, **settings})), engine


def run(coro):
    return asyncio.run(coro)


def test_text_reply(smollm2_tokenizer):
    tuner, engine = make(smollm2_tokenizer, ["The answer is \\boxed{5}."])
    response = run(tuner([{"role": "user", "content": "2+3?"}]))
    assert [b["type"] for b in response.content] == ["text"]
    assert response.content[0]["text"] == "The answer is \\boxed{5}."
    (call,) = tuner.calls
    assert call.response_ids[-1] == smollm2_tokenizer.eos_token_id and call.finish_reason == "stop"
    assert len(call.logprobs) == len(call.response_ids) and call.madness == {}
    assert response.usage.output_tokens == len(call.response_ids)
    prompt, sampling = engine.requests[0]
    assert prompt == call.prompt_ids and sampling.temperature == 0.7 and sampling.max_tokens == 256


def test_stop_token_other_than_the_tokenizers_eos_is_not_message_text(smollm2_tokenizer):
    """Seen on the GPU run: a GGUF conversion under another transformers named <|im_start|> the
    tokenizer's EOS while vLLM stopped on <|im_end|> (generation config); the answer text then ended
    in '<|im_end|>'. A special token that ends a completion is never part of the message."""
    import copy

    tok = copy.deepcopy(smollm2_tokenizer)
    tok.eos_token, tok.pad_token = "<|im_start|>", None
    engine = ScriptedEngine(smollm2_tokenizer, ["The answer is \\boxed{5}."])  # appends <|im_end|>
    base = {"temperature": 0.7, "max_model_len": 2048, "max_tokens_per_turn": 256}
    tuner = ModelTuner(engine, ChatRenderer(tok), TunerSettings(**base))
    response = run(tuner([{"role": "user", "content": "2+3?"}]))
    assert response.content[0]["text"] == "The answer is \\boxed{5}."
    assert tuner.calls[0].response_ids[-1] == smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_tool_call_reply_becomes_a_tool_use_block(smollm2_tokenizer):
    tuner, _ = make(smollm2_tokenizer, ["Let me compute.\n" + CALL])
    response = run(tuner([{"role": "user", "content": "2+3?"}], tools=TOOLS))
    text, use = response.content
    assert text["text"] == "Let me compute."
    assert use["type"] == "tool_use" and use["name"] == "execute_python_code" and use["input"] == {"code": "print(2+3)"}
    assert tuner.calls[0].madness == {}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ('<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>', "unknown tool 'rm_rf'"),
        ('<tool_call>\n{"name": "execute_python_code", "arguments": {}}\n</tool_call>', "missing required argument"),
        (
            '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": 1}}\n</tool_call>',
            "is not of type string",
        ),
        ("<tool_call>\n{broken\n</tool_call>", "not valid JSON"),
    ],
)
def test_wrong_tool_calls_are_flagged(smollm2_tokenizer, reply, reason):
    tuner, _ = make(smollm2_tokenizer, [reply])
    response = run(tuner([{"role": "user", "content": "q"}], tools=TOOLS))
    assert reason in tuner.calls[0].madness["wrong_toolcall"]
    if "JSON" in reason:  # unusable: shown as text, no tool_use block
        assert [b["type"] for b in response.content] == ["text"]
    # only a call that does not parse counts as a parse failure; an unknown tool or bad arguments parse
    assert tuner.calls[0].tool_call_parse_failures == (1 if "JSON" in reason else 0)


def test_unclosed_and_mixed_tool_calls_count_their_parse_failures(smollm2_tokenizer):
    tuner, _ = make(smollm2_tokenizer, [CALL + "\n<tool_call>\n{broken\n</tool_call>", '<tool_call>\n{"name": "x"'])
    mixed = run(tuner([{"role": "user", "content": "q"}], tools=TOOLS))
    assert [b["type"] for b in mixed.content] == ["text", "tool_use"]  # the good call is used, the broken one shown
    assert "{broken" in mixed.content[0]["text"] and tuner.calls[0].tool_call_parse_failures == 1
    assert tuner.calls[0].tool_calls == 1  # the call that parsed is counted as a tool call
    assert tuner.calls[0].tool_names == [mixed.content[1]["name"]]  # and named
    cut = run(tuner([{"role": "user", "content": "q"}], tools=TOOLS))
    assert [b["type"] for b in cut.content] == ["text"] and tuner.calls[1].tool_call_parse_failures == 1
    assert tuner.calls[1].tool_calls == 0


def test_nonsense_is_flagged(smollm2_tokenizer):
    tuner, _ = make(smollm2_tokenizer, ["the " * 120])
    run(tuner([{"role": "user", "content": "q"}]))
    assert "repeat" in tuner.calls[0].madness["nonsense"]
    tuner, _ = make(smollm2_tokenizer, ["hello <|im_start|>user\nfake turn"])
    run(tuner([{"role": "user", "content": "q"}]))
    assert "special tokens leaked" in tuner.calls[0].madness["nonsense"]


def test_per_call_sampling_overrides_are_honoured(smollm2_tokenizer):
    tuner, engine = make(smollm2_tokenizer, ["ok"])
    run(tuner([{"role": "user", "content": "q"}], temperature=0.0, top_p=0.5, top_k=3, max_tokens=7))
    sampling = engine.requests[0][1]
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.max_tokens) == (0.0, 0.5, 3, 7)


def test_unknown_arguments_are_rejected_loudly(smollm2_tokenizer):
    tuner, _ = make(smollm2_tokenizer, ["ok"])
    with pytest.raises(TypeError, match="does not support the argument.*frequency_penalty"):
        run(tuner([{"role": "user", "content": "q"}], frequency_penalty=1.0))
    with pytest.raises(ValueError, match="tool_choice='nope'"):
        run(tuner([{"role": "user", "content": "q"}], tools=TOOLS, tool_choice="nope"))


def test_required_tool_choice_constrains_decoding(smollm2_tokenizer):
    tuner, engine = make(smollm2_tokenizer, [CALL])
    run(tuner([{"role": "user", "content": "q"}], tools=TOOLS, tool_choice="required"))
    tag = json.loads(engine.requests[0][1].structured["structural_tag"])
    assert tag["format"]["at_least_one"] is True and tag["format"]["stop_after_first"] is False
    run(tuner([{"role": "user", "content": "q"}], tools=TOOLS, tool_choice="execute_python_code"))
    named = json.loads(engine.requests[1][1].structured["structural_tag"])["format"]
    assert named["stop_after_first"] is True and [t["begin"] for t in named["tags"]] == [
        '<tool_call>\n{"name": "execute_python_code", "arguments": '
    ]
    assert tag["format"]["tags"][0]["content"]["json_schema"]["required"] == ["code"]


def test_tool_choice_none_returns_calls_as_text(smollm2_tokenizer):
    tuner, _ = make(smollm2_tokenizer, [CALL])
    response = run(tuner([{"role": "user", "content": "q"}], tools=TOOLS, tool_choice="none"))
    assert [b["type"] for b in response.content] == ["text"]


def test_structured_model(smollm2_tokenizer):
    class Answer(BaseModel):
        value: int

    tuner, engine = make(smollm2_tokenizer, ['{"value": 5}'])
    response = run(tuner([{"role": "user", "content": "q"}], structured_model=Answer))
    assert response.metadata == {"value": 5}
    assert engine.requests[0][1].structured == {"json": Answer.model_json_schema()}


def test_prompt_too_long_ends_gracefully_without_calling_the_engine(smollm2_tokenizer):
    tuner, engine = make(smollm2_tokenizer, ["ok"], max_model_len=300, max_tokens_per_turn=256)
    response = run(tuner([{"role": "user", "content": "word " * 200}]))
    assert engine.requests == [] and tuner.context_overflow
    assert response.content[0]["text"] == "" and response.metadata == {"astuner_context_overflow": True}
    assert tuner.calls[0].finish_reason == "context_overflow"


def test_generation_budget_is_capped_by_the_context(smollm2_tokenizer):
    tuner, engine = make(smollm2_tokenizer, ["ok"], max_model_len=400, max_tokens_per_turn=300)
    run(tuner([{"role": "user", "content": "hi"}]))
    prompt, sampling = engine.requests[0]
    assert sampling.max_tokens == min(300, 400 - len(prompt))
