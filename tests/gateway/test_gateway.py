"""The OpenAI endpoint of an episode, driven by the real OpenAI SDK against a scripted engine.

Token-exactness is checked against ModelTuner on the same conversation (same prompt ids, same
splicing, same merged samples); errors are checked for their status and the field they name.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from agentscope.formatter import DashScopeChatFormatter
from agentscope.message import Msg, ToolResultBlock

from astuner.context.merge import merge_calls
from tests.gateway.conftest import CALL, SlowEngine, make_tuner
from tests.tuner.test_chat_render import TOOLS

SYSTEM, QUESTION = "You solve math with Python.", "What is 2+3?"
REPLIES = ["Let me compute.\n" + CALL, "The answer is \\boxed{5}."]


def client(tuner) -> openai.AsyncOpenAI:
    base_url, api_key = tuner.openai_endpoint()
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)


async def sdk_conversation(tuner, stream: bool = False) -> list[dict]:
    """Two turns through the OpenAI SDK: a forced tool call, its result, a free answer."""
    oai = client(tuner)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    first = await oai.chat.completions.create(
        model="policy", messages=messages, tools=TOOLS, tool_choice="required", temperature=0.7
    )
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    messages.append(message.model_dump(exclude_none=True))
    (call,) = message.tool_calls
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "5\n"})
    kwargs = {"model": "policy", "messages": messages, "tools": TOOLS, "max_tokens": 64}
    if stream:
        parts = [c async for c in await oai.chat.completions.create(**kwargs, stream=True)]
        text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
        assert parts[-1].choices[0].finish_reason == "stop"
    else:
        text = (await oai.chat.completions.create(**kwargs)).choices[0].message.content
    await oai.close()
    return [message.model_dump(), text]


async def agentscope_conversation(tuner) -> None:
    """The same two turns through ModelTuner, formatted by AgentScope as a ReAct agent would."""
    formatter = DashScopeChatFormatter()
    history = [Msg("system", SYSTEM, "system"), Msg("user", QUESTION, "user")]
    first = await tuner(await formatter.format(history), tools=TOOLS, tool_choice="required", temperature=0.7)
    history.append(Msg("assistant", list(first.content), "assistant"))
    (use,) = [b for b in first.content if b["type"] == "tool_use"]
    result = ToolResultBlock(type="tool_result", id=use["id"], name=use["name"], output="5\n")
    history.append(Msg("system", [result], "system"))
    await tuner(await formatter.format(history), tools=TOOLS, max_tokens=64)


@pytest.mark.parametrize("stream", [False, True])
def test_sdk_episode_records_what_a_model_tuner_episode_records(smollm2_tokenizer, stream):
    via_sdk, sdk_engine = make_tuner(smollm2_tokenizer, REPLIES)
    via_tuner, tuner_engine = make_tuner(smollm2_tokenizer, REPLIES)

    async def both():
        message, text = await sdk_conversation(via_sdk, stream)
        await agentscope_conversation(via_tuner)
        via_sdk.close()
        return message, text

    message, text = asyncio.run(both())
    assert message["content"] == "Let me compute."
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"code": "print(2+3)"}
    assert text == "The answer is \\boxed{5}."
    assert [p for p, _ in sdk_engine.requests] == [p for p, _ in tuner_engine.requests]
    a, b = via_sdk.calls, via_tuner.calls
    assert [(c.prompt_ids, c.response_ids, c.logprobs, c.spliced, c.drift) for c in a] == [
        (c.prompt_ids, c.response_ids, c.logprobs, c.spliced, c.drift) for c in b
    ]
    assert a[1].spliced == 1 and a[1].drift == 0
    (sample,) = merge_calls(a, 4096, 4096, 4).samples
    assert sample == merge_calls(b, 4096, 4096, 4).samples[0]
    assert sample.call_indices == [0, 1] and 0 in sample.loss_mask and sample.loss_mask[-1] == 1
    # the structured-output constraint of tool_choice="required" reached the engine the same way
    assert sdk_engine.requests[0][1] == tuner_engine.requests[0][1]


def test_unparsable_tool_call_comes_back_as_text_and_is_counted(smollm2_tokenizer):
    broken = "<tool_call>\n{broken\n</tool_call>"
    tuner, _ = make_tuner(smollm2_tokenizer, [broken])

    async def ask():
        oai = client(tuner)
        r = await oai.chat.completions.create(
            model="policy", messages=[{"role": "user", "content": "2+3?"}], tools=TOOLS
        )
        await oai.close()
        return r.choices[0]

    choice = asyncio.run(ask())
    assert choice.message.content == broken and not choice.message.tool_calls and choice.finish_reason == "stop"
    assert tuner.calls[0].tool_call_parse_failures == 1
    assert "not valid JSON" in tuner.calls[0].madness["wrong_toolcall"]


def test_completions_and_models(smollm2_tokenizer):
    tuner, engine = make_tuner(smollm2_tokenizer, [" 5"])

    async def ask():
        oai = client(tuner)
        models = await oai.models.list()
        ids = smollm2_tokenizer("2+3 =", add_special_tokens=False)["input_ids"]
        by_ids = await oai.completions.create(model="policy", prompt=ids, max_tokens=8, logprobs=0)
        by_text = await oai.completions.create(model="policy", prompt="2+3 =", max_tokens=8)
        await oai.close()
        return models, ids, by_ids, by_text

    models, ids, by_ids, by_text = asyncio.run(ask())
    assert [m.id for m in models.data] == ["policy"]
    assert by_ids.choices[0].text == " 5" == by_text.choices[0].text
    assert by_ids.choices[0].logprobs.token_logprobs == tuner.calls[0].logprobs
    assert engine.requests[0][0] == ids == engine.requests[1][0] and engine.requests[0][1].max_tokens == 8


def _post(tuner, path: str, body, key: str | None = None, raw: bytes | None = None) -> httpx.Response:
    base_url, api_key = tuner.openai_endpoint()
    headers = {"Authorization": f"Bearer {key or api_key}"}
    with httpx.Client() as http:
        if raw is not None:
            return http.post(base_url + path, content=raw, headers=headers)
        return http.post(base_url + path, json=body, headers=headers)


CHAT = {"model": "policy", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**CHAT, "n": 2}, "n"),
        ({**CHAT, "logit_bias": {"5": 10}}, "logit_bias"),
        ({**CHAT, "logprobs": True, "top_logprobs": 3}, "top_logprobs"),
        ({**CHAT, "model": "gpt-4o"}, "model"),
        ({**CHAT, "stop": ["\n"]}, "stop"),
        ({**CHAT, "messages": []}, "messages"),
        ({**CHAT, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        (
            {**CHAT, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0]",
        ),
        ({**CHAT, "temperature": "hot"}, "temperature"),
        ({**CHAT, "tool_choice": "sometimes"}, "tool_choice"),
        ({**CHAT, "tool_choice": "required"}, "tool_choice"),  # no tools offered
        ({**CHAT, "frobnicate": 1}, "frobnicate"),
        ({"messages": CHAT["messages"]}, "model"),
    ],
)
def test_bad_requests_get_400_naming_the_field(smollm2_tokenizer, body, param):
    tuner, engine = make_tuner(smollm2_tokenizer, ["x"])

    async def go():
        tuner.openai_endpoint()
        return await asyncio.to_thread(_post, tuner, "/chat/completions", body)

    r = asyncio.run(go())
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["message"].startswith(param) and error["param"] == param
    assert engine.requests == [] and tuner.calls == []


def test_ignored_parameters_are_counted(smollm2_tokenizer):
    tuner, engine = make_tuner(smollm2_tokenizer, ["x"], gateway_ignore=("seed", "n"))

    async def go():
        tuner.openai_endpoint()
        return await asyncio.to_thread(_post, tuner, "/chat/completions", {**CHAT, "seed": 3, "n": 1})

    r = asyncio.run(go())
    assert r.status_code == 200 and tuner.llm.counters["gateway_ignored_params"] == 1  # n=1 is honoured as is
    assert engine.requests[0][1].seed is None


def test_keys_errors_and_finished_episodes(smollm2_tokenizer):
    tuner, _ = make_tuner(smollm2_tokenizer, ["x"], episode_id="s0-t1-r0", max_calls=1)

    async def go():
        base_url, api_key = tuner.openai_endpoint()
        out = {"wrong_key": await asyncio.to_thread(_post, tuner, "/chat/completions", CHAT, key="nope")}
        out["not_json"] = await asyncio.to_thread(_post, tuner, "/chat/completions", None, raw=b"{oops")
        out["ok"] = await asyncio.to_thread(_post, tuner, "/chat/completions", CHAT)
        out["turn_limit"] = await asyncio.to_thread(_post, tuner, "/chat/completions", CHAT)
        unknown = base_url.replace("s0-t1-r0", "s9-t9-r9") + "/chat/completions"
        with httpx.Client() as http:
            out["unknown"] = await asyncio.to_thread(
                http.post, unknown, json=CHAT, headers={"Authorization": f"Bearer {api_key}"}
            )
        tuner.close()
        out["finished"] = await asyncio.to_thread(_post, tuner, "/chat/completions", CHAT)
        return out

    out = asyncio.run(go())
    assert out["wrong_key"].status_code == 401
    assert out["not_json"].status_code == 400 and "not valid JSON" in out["not_json"].json()["error"]["message"]
    assert out["ok"].status_code == 200
    assert out["turn_limit"].status_code == 409 and "max_steps" in out["turn_limit"].json()["error"]["message"]
    assert tuner.turn_limit_reached
    assert out["unknown"].status_code == 404 and "s9-t9-r9" in out["unknown"].json()["error"]["message"]
    finished = out["finished"].json()["error"]["message"]
    assert out["finished"].status_code == 409 and "'s0-t1-r0'" in finished and "finished" in finished


def test_256_concurrent_requests_each_reach_their_own_episode(smollm2_tokenizer):
    engine = SlowEngine(smollm2_tokenizer, ["ok"], delay=1.0)
    tuners = [make_tuner(smollm2_tokenizer, None, engine=engine, episode_id=f"ep{i}")[0] for i in range(256)]

    async def one(i, tuner, http):
        base_url, api_key = tuner.openai_endpoint()
        body = {**CHAT, "messages": [{"role": "user", "content": f"question {i}"}]}
        r = await http.post(base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {api_key}"})
        return r.status_code

    async def go():
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:
            return await asyncio.gather(*(one(i, t, http) for i, t in enumerate(tuners)))

    assert asyncio.run(go()) == [200] * 256
    assert engine.peak == 256  # all were in flight at once
    for i, t in enumerate(tuners):
        (call,) = t.calls
        assert f"question {i}" in smollm2_tokenizer.decode(call.prompt_ids)


def test_endpoint_outside_the_episode_loop_is_refused_with_a_reason(smollm2_tokenizer):
    tuner, _ = make_tuner(smollm2_tokenizer, ["x"])
    with pytest.raises(RuntimeError, match=r"inside the workflow's async execute\(\)"):
        tuner.openai_endpoint()


def test_replies_are_not_held_back_by_nagle(smollm2_tokenizer):
    """Measured: without TCP_NODELAY each reply waited ~46 ms for a delayed ACK; with it ~2 ms (httpx)."""
    import statistics
    import time

    tuner, _ = make_tuner(smollm2_tokenizer, ["ok"])

    async def go():
        base_url, api_key = tuner.openai_endpoint()
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient() as http:
            times = []
            for _ in range(21):
                t0 = time.perf_counter()
                r = await http.post(base_url + "/chat/completions", json=CHAT, headers=headers)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200
        return statistics.median(times[1:])

    assert asyncio.run(go()) < 0.025
