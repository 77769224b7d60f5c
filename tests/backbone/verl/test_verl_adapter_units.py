"""The adapter's pieces without Ray: the engine over ``server_manager.generate`` and episode -> outputs."""

from __future__ import annotations

import asyncio

import pytest

from astuner.backbone.verl.agent_loop import VerlEngine, episode_outputs
from astuner.context.types import Sample
from astuner.engine.protocol import EngineError, SamplingParams
from astuner.rollout.runner import Episode


class FakeServerManager:
    def __init__(self, out):
        self.out, self.calls = out, []

    async def generate(self, request_id, *, prompt_ids, sampling_params):
        self.calls.append((request_id, prompt_ids, dict(sampling_params)))
        return self.out


def _token_output(ids, logprobs, stop="completed"):
    from verl.workers.rollout.replica import TokenOutput

    # as verl's LLMServerClient returns it: the weight version, also as min/max for the agent loop
    versions = {"global_steps": 3, "min_global_steps": 3, "max_global_steps": 3}
    return TokenOutput(token_ids=ids, log_probs=logprobs, stop_reason=stop, extra_fields=versions)


def test_engine_maps_sampling_and_keeps_one_request_id():
    sm = FakeServerManager(_token_output([5, 6, 2], [-0.1, -0.2, -0.3]))
    engine = VerlEngine(sm, "episode-1", {"temperature": 1.0, "repetition_penalty": 1.0, "logprobs": True})
    sampling = SamplingParams(max_tokens=3, temperature=0.5, top_p=0.9, top_k=5, stop_token_ids=(7,))
    done = asyncio.run(engine.generate([1, 2], sampling))
    asyncio.run(engine.generate([1, 2, 5, 6, 2, 9], sampling))
    assert (done.token_ids, done.logprobs, done.finish_reason) == ([5, 6, 2], [-0.1, -0.2, -0.3], "length")
    assert {c[0] for c in sm.calls} == {"episode-1"}  # sticky: every turn on the same server
    assert sm.calls[0][2] == {
        "repetition_penalty": 1.0,
        "logprobs": True,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "max_tokens": 3,
        "stop_token_ids": [7],
    }
    assert engine.min_global_steps == engine.max_global_steps == 3


@pytest.mark.parametrize(
    ("out", "sampling", "match"),
    [
        (([1], [-0.1], "aborted"), SamplingParams(max_tokens=4), "aborted"),
        (([1, 2], [-0.1], "completed"), SamplingParams(max_tokens=4), "no logprob per token"),
    ],
)
def test_engine_errors_become_episode_failures(out, sampling, match):
    engine = VerlEngine(FakeServerManager(_token_output(*out)), "r", {})
    with pytest.raises(EngineError, match=match):
        asyncio.run(engine.generate([1], sampling))


def test_an_episode_outside_its_group_gives_no_output():
    """verl's v1 worker takes an empty list: the episode is left out of its group, as on debug and Trinity."""
    failed = Episode("e", "t", 0, status="failed", error="boom")
    timeout = Episode("e", "t", 0, status="timeout")
    dropped = Episode("e", "t", 0, status="ok", reward=1.0)  # every sample dropped (prompt too long)
    assert [episode_outputs(e, seconds=1.0, versions=(4, 4)) for e in (failed, timeout, dropped)] == [[], [], []]


def test_each_timeline_is_one_output_with_the_episode_reward():
    samples = [Sample([1], [2, 3], [1, 0], [-0.5, 0.0], [0]), Sample([4], [5], [1], [-0.1], [1, 2])]
    ok = Episode("e", "t", 0, status="ok", reward=0.5, samples=samples)
    outs = episode_outputs(ok, seconds=0.1, versions=(2, 3))
    assert [o.response_mask for o in outs] == [[1, 0], [1]] and {o.reward_score for o in outs} == {0.5}
    assert {(o.extra_fields["min_global_steps"], o.extra_fields["max_global_steps"]) for o in outs} == {(2, 3)}
    assert [o.num_turns for o in outs] == [1, 2] and all(o.extra_fields["reward_extra_info"] == {} for o in outs)


def test_constraint_needs_vllm_here():
    engine = VerlEngine(FakeServerManager(_token_output([1], [-0.1])), "r", {})
    with pytest.raises(EngineError, match="constrained decoding .* needs vllm"):
        asyncio.run(engine.generate([1], SamplingParams(max_tokens=4, structured={"regex": "x"})))


def test_constraint_travels_as_vllm_object(monkeypatch):
    """With vllm installed (GPU), the constraint becomes vLLM's own params object (a stand-in class here)."""
    import sys
    import types

    class StructuredOutputsParams:
        def __init__(self, **kw):
            self.kw = kw

    module = types.ModuleType("vllm.sampling_params")
    module.StructuredOutputsParams = StructuredOutputsParams
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", module)
    sm = FakeServerManager(_token_output([1], [-0.1]))
    asyncio.run(VerlEngine(sm, "r", {}).generate([1], SamplingParams(max_tokens=4, structured={"regex": "a+"})))
    sent = sm.calls[0][2]["structured_outputs"]
    assert isinstance(sent, StructuredOutputsParams) and sent.kw == {"regex": "a+"}
