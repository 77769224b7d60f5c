"""The rollout runner: groups, judging, madness, and failures that never crash the batch."""

from __future__ import annotations

import asyncio
import math

import pytest

from astuner import Task, Workflow, WorkflowOutput
from astuner.rollout.metrics import rollout_metrics
from astuner.rollout.runner import RolloutRunner, RolloutSettings
from astuner.task_judge.base_judge import BaseJudge
from astuner.task_judge.math_answer_as_judge import MathAnswerAsJudge
from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.model_tuner import TunerSettings
from tests.conftest import ScriptedEngine

TASKS = [Task(task_id=f"t{i}", main_query=f"{i}+1?", metadata={"ground_truth": str(i + 1)}) for i in range(3)]
LIVE = {"now": 0, "peak": 0}


class AskOnce(Workflow):
    async def execute(self, workflow_task, model_tuner):
        response = await model_tuner([{"role": "user", "content": workflow_task.task.main_query}])
        return WorkflowOutput(metadata={"final_answer": response.content[0]["text"]})


class Counting(AskOnce):
    async def execute(self, workflow_task, model_tuner):
        LIVE["now"] += 1
        LIVE["peak"] = max(LIVE["peak"], LIVE["now"])
        await asyncio.sleep(0.05)
        try:
            return await super().execute(workflow_task, model_tuner)
        finally:
            LIVE["now"] -= 1


class Flaky(AskOnce):
    async def execute(self, workflow_task, model_tuner):
        if workflow_task.task.task_id == "t1" and workflow_task.repeat_index == 0:
            raise RuntimeError("tool exploded")
        if workflow_task.task.task_id == "t2" and workflow_task.repeat_index == 1:
            await asyncio.sleep(60)
        return await super().execute(workflow_task, model_tuner)


class NaNReward(Workflow):
    async def execute(self, workflow_task, model_tuner):
        await model_tuner([{"role": "user", "content": "q"}])
        return WorkflowOutput(reward=math.nan)


class RaisingJudge(BaseJudge):
    def compute_reward(self, workflow_task, workflow_output):
        raise ValueError("judge broke")


class AsyncJudge(BaseJudge):
    async def compute_reward(self, workflow_task, workflow_output):
        await asyncio.sleep(0)
        return 0.25, True


def make_runner(tokenizer, workflow, replies, judge=None, **overrides):
    tuner = TunerSettings(temperature=1.0, max_model_len=2048, max_tokens_per_turn=128)
    settings = dict(
        num_repeat=2,
        max_env_worker=4,
        episode_timeout=2.0,
        madness_checklist=("nonsense",),
        madness_reward=-1.0,
        max_prompt_length=1024,
        max_response_length=1024,
        max_samples_per_task=4,
        tuner=tuner,
    )
    settings.update(overrides)
    engine = ScriptedEngine(tokenizer, replies)
    return RolloutRunner(
        engine, ChatRenderer(tokenizer), workflow, judge or MathAnswerAsJudge(), RolloutSettings(**settings)
    ), engine


def test_groups_rewards_and_samples(smollm2_tokenizer):
    runner, _ = make_runner(smollm2_tokenizer, AskOnce, ["\\boxed{1}", "\\boxed{2}", "\\boxed{3}"])
    episodes = asyncio.run(runner.run(TASKS))
    assert [(e.task_id, e.repeat_index) for e in episodes] == [(t.task_id, r) for t in TASKS for r in range(2)]
    assert all(e.status == "ok" and len(e.samples) == 1 for e in episodes)
    assert sum(e.is_success for e in episodes) >= 1
    assert {e.reward for e in episodes} <= {0.0, 1.0}
    sample = episodes[0].samples[0]
    assert sample.loss_mask == [1] * len(sample.response_ids)


def test_failures_and_timeouts_are_counted_not_raised(smollm2_tokenizer):
    runner, _ = make_runner(smollm2_tokenizer, Flaky, ["\\boxed{1}"], episode_timeout=0.5)
    episodes = asyncio.run(runner.run(TASKS))
    by_id = {(e.task_id, e.repeat_index): e for e in episodes}
    failed, timed_out = by_id[("t1", 0)], by_id[("t2", 1)]
    assert failed.status == "failed" and "RuntimeError: tool exploded" in failed.error and failed.samples == []
    assert timed_out.status == "timeout" and "episode_timeout" in timed_out.error
    assert sum(e.status == "ok" for e in episodes) == 4
    metrics = rollout_metrics(episodes, 1.0)
    assert (metrics["episodes_failed"], metrics["episodes_timeout"]) == (1, 1)


def test_engine_failure_fails_only_that_episode(smollm2_tokenizer):
    runner, engine = make_runner(smollm2_tokenizer, AskOnce, ["\\boxed{1}"])
    engine.fail_on = {0}
    episodes = asyncio.run(runner.run(TASKS[:1]))
    assert sorted(e.status for e in episodes) == ["failed", "ok"]
    assert any("injected failure" in (e.error or "") for e in episodes)


@pytest.mark.parametrize(
    ("workflow", "judge", "message"), [(AskOnce, RaisingJudge(), "judge broke"), (NaNReward, None, "reward is nan")]
)
def test_bad_judges_and_rewards_fail_the_episode(smollm2_tokenizer, workflow, judge, message):
    runner, _ = make_runner(smollm2_tokenizer, workflow, ["x"], judge=judge)
    episodes = asyncio.run(runner.run(TASKS[:1]))
    assert all(e.status == "failed" and message in e.error for e in episodes)


def test_async_judge_is_awaited(smollm2_tokenizer):
    runner, _ = make_runner(smollm2_tokenizer, AskOnce, ["x"], judge=AsyncJudge())
    episodes = asyncio.run(runner.run(TASKS[:1]))
    assert [(e.reward, e.is_success) for e in episodes] == [(0.25, True), (0.25, True)]


def test_madness_overrides_the_reward(smollm2_tokenizer):
    runner, _ = make_runner(smollm2_tokenizer, AskOnce, ["\\boxed{1} " + "again " * 100])
    episodes = asyncio.run(runner.run(TASKS[:1]))
    assert all(e.madness == ["nonsense"] and e.reward == -1.0 and e.is_success is False for e in episodes)


def test_concurrency_is_bounded(smollm2_tokenizer):
    LIVE.update(now=0, peak=0)
    runner, _ = make_runner(smollm2_tokenizer, Counting, ["x"], max_env_worker=2, num_repeat=4)
    asyncio.run(runner.run(TASKS))
    assert LIVE["peak"] == 2


class AskUntilCut(Workflow):
    """Keeps calling the model (an agent loop that never finishes on its own)."""

    async def execute(self, workflow_task, model_tuner):
        while True:
            await model_tuner([{"role": "user", "content": workflow_task.task.main_query}])


# --8<-- [start:calls-left]
class StopsInTime(Workflow):
    """Finishes gracefully when the tuner says no call is left."""

    async def execute(self, workflow_task, model_tuner):
        text = ""
        while model_tuner.calls_left:
            response = await model_tuner([{"role": "user", "content": workflow_task.task.main_query}])
            text = response.content[0]["text"]
        return WorkflowOutput(metadata={"final_answer": text})
        # --8<-- [end:calls-left]


def test_turn_cap_ends_the_episode_flagged_with_reward_zero(smollm2_tokenizer):
    tuner = TunerSettings(temperature=1.0, max_model_len=2048, max_tokens_per_turn=128, max_calls=3)
    runner, engine = make_runner(smollm2_tokenizer, AskUntilCut, ["\\boxed{1}"], num_repeat=2, tuner=tuner)
    episodes = asyncio.run(runner.run(TASKS[:1]))
    assert [e.status for e in episodes] == ["ok", "ok"]
    assert all(e.turn_limit_reached and e.reward == 0.0 and e.is_success is False for e in episodes)
    assert all(len(e.calls) == 3 for e in episodes) and len(engine.requests) == 6  # no 4th call reached the engine
    assert episodes[0].to_dict()["turn_limit_reached"] is True and episodes[0].samples  # its calls still train


def test_workflow_that_checks_calls_left_is_judged_normally(smollm2_tokenizer):
    tuner = TunerSettings(temperature=1.0, max_model_len=2048, max_tokens_per_turn=128, max_calls=2)
    runner, _ = make_runner(smollm2_tokenizer, StopsInTime, ["\\boxed{1}"], num_repeat=2, tuner=tuner)
    episodes = asyncio.run(runner.run(TASKS[:1]))
    assert all(not e.turn_limit_reached and len(e.calls) == 2 and e.reward == 1.0 for e in episodes)


# --8<-- [start:reads-config]
class ReadsConfig(Workflow):
    async def execute(self, workflow_task, model_tuner):
        cfg = model_tuner.config
        return WorkflowOutput(
            reward=1.0, metadata={"board": cfg.game.board_size, "len": cfg.astuner.rollout.max_model_len}
        )
        # --8<-- [end:reads-config]


def test_bound_runner_shares_its_parts_and_episodes_see_the_config(smollm2_tokenizer):
    from astuner.config.schema import AstunerConfig, freeze
    from astuner.config.view import ComposedConfig

    runner, _ = make_runner(smollm2_tokenizer, ReadsConfig, ["x"])
    runner.config = ComposedConfig(freeze(AstunerConfig()), {"game": {"board_size": 7}})
    other = ScriptedEngine(smollm2_tokenizer, ["y"])
    bound = runner.bind(other)
    assert bound.engine is other and runner.engine is not other
    assert (bound.workflow_cls, bound.judge, bound.renderer, bound.config) == (
        runner.workflow_cls,
        runner.judge,
        runner.renderer,
        runner.config,
    )
    (episode, _) = asyncio.run(bound.run(TASKS[:1]))
    assert episode.output_metadata == {"board": 7, "len": 13000}
