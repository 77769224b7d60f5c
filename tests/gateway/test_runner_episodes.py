"""Episodes whose workflow talks to the model through the OpenAI SDK, run by the rollout runner."""

from __future__ import annotations

import asyncio
import dataclasses

from astuner.rollout.metrics import rollout_metrics
from tests.gateway.conftest import CALL
from tests.gateway.sdk_loop_workflow import ENDPOINTS, SdkLoop
from tests.rollout.test_runner import TASKS, make_runner


def test_sdk_workflow_episodes(smollm2_tokenizer):
    replies = [CALL, "<tool_call>\n{broken\n</tool_call>"]  # a good call, then an unparsable one: the answer
    runner, _ = make_runner(smollm2_tokenizer, SdkLoop, replies, max_env_worker=1)
    episodes = asyncio.run(runner.run(TASKS[:1]))
    assert [e.status for e in episodes] == ["ok", "ok"], [e.error for e in episodes]
    for e in episodes:
        assert e.metrics["calls"] == 2 and e.metrics["tool_call_parse_failures"] == 1 and e.metrics["drift"] == 0
        (sample,) = e.samples  # the second prompt extends the first: one timeline
        assert sample.call_indices == [0, 1] and e.calls[1].spliced == 1
    assert rollout_metrics(episodes, 1.0)["tool_call_parse_failures"] == 2
    assert len({url for url, _ in ENDPOINTS[-2:]}) == 2  # one endpoint per episode


def test_turn_limit_through_the_sdk_ends_the_episode_like_model_tuner(smollm2_tokenizer):
    runner, _ = make_runner(smollm2_tokenizer, SdkLoop, [CALL])
    limited = dataclasses.replace(runner.settings.tuner, max_calls=2)
    episodes = asyncio.run(runner.run(TASKS[:1], tuner=limited))
    for e in episodes:  # the third call got 409, the client raised, the episode counts as cut off
        assert e.status == "ok" and e.turn_limit_reached and e.reward == 0.0 and e.metrics["calls"] == 2
