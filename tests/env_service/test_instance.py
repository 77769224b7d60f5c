"""Per-episode instances in the rollout runner: created before, always released after, faults counted.

A scripted engine plays the reference game (or a fault-injecting server) over real loopback HTTP.
"""

from __future__ import annotations

import asyncio

import pytest

from astuner import Task, Workflow, WorkflowOutput
from astuner.env_service import EnvCallSettings, EnvServiceClient, EnvSessions
from astuner.env_service.instance import action_message
from astuner.rollout.runner import RolloutRunner, RolloutSettings
from astuner.task_judge.env_service_as_judge import EnvServiceJudge
from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.model_tuner import TunerSettings
from tests.conftest import ScriptedEngine
from tests.env_service.conftest import kill

FAST = EnvCallSettings(timeout=2.0, retries=1, backoff=0.01)
HOOKS: dict = {}


class Play(Workflow):
    """Multi-turn: the model's reply is the action, the environment's answer the next user message."""

    async def execute(self, workflow_task, model_tuner):
        env = workflow_task.env
        messages = list(workflow_task.task.init_messages)
        while not env.is_terminated:
            text = (await model_tuner(messages)).content[0]["text"]
            result = await env.step(text)
            messages += [{"role": "assistant", "content": text}, *result.state]
            if "after_step" in HOOKS:
                await HOOKS["after_step"]()
        return WorkflowOutput(metadata={"turns": len(messages) // 2})


class Explode(Workflow):
    async def execute(self, workflow_task, model_tuner):
        await workflow_task.env.step("3")
        raise RuntimeError("agent crashed")


class Hang(Workflow):
    async def execute(self, workflow_task, model_tuner):
        HOOKS.setdefault("started", asyncio.Event()).set()
        await asyncio.sleep(60)


def make_runner(tokenizer, url, workflow, replies, *, env_type="guess_number", timeout=5.0, repeat=1, workers=4):
    settings = RolloutSettings(
        num_repeat=repeat,
        max_env_worker=workers,
        episode_timeout=timeout,
        madness_checklist=(),
        madness_reward=0.0,
        max_prompt_length=2048,
        max_response_length=2048,
        max_samples_per_task=4,
        tuner=TunerSettings(temperature=1.0, max_model_len=4096, max_tokens_per_turn=16),
    )
    sessions = EnvSessions(EnvServiceClient(url, env_type, FAST))
    engine = ScriptedEngine(tokenizer, replies)
    return RolloutRunner(engine, ChatRenderer(tokenizer), workflow, EnvServiceJudge(), settings, sessions)


@pytest.fixture(autouse=True)
def _clear_hooks():
    HOOKS.clear()
    yield
    HOOKS.clear()


def test_episode_plays_multi_turn_is_judged_by_evaluate_and_released(reference, smollm2_tokenizer):
    url, service = reference
    secret = service.secret_of("train-3")
    wrong = 1 if secret != 1 else 2
    runner = make_runner(smollm2_tokenizer, url, Play, [str(wrong), str(wrong), str(secret)], workers=1)
    (episode,) = asyncio.run(runner.run([Task(task_id="train-3", main_query="")]))
    assert episode.status == "ok", episode.error
    assert (episode.reward, episode.is_success) == (1.0, True)
    assert len(episode.calls) == 3
    # the opening message came from /create; the later turns were merged into one sample
    assert "I am thinking of a whole number" in smollm2_tokenizer.decode(episode.calls[0].prompt_ids)
    assert [s.call_indices for s in episode.samples] == [[0, 1, 2]]
    assert service.stats() == {"live": 0, "created": 1, "released": 1}


def test_unsolved_game_scores_zero_and_threshold_is_configurable(reference, smollm2_tokenizer):
    url, service = reference
    runner = make_runner(smollm2_tokenizer, url, Play, ["no idea"], repeat=3)
    episodes = asyncio.run(runner.run([Task(task_id="train-0", main_query="")]))
    assert [(e.status, e.reward, e.is_success, len(e.calls)) for e in episodes] == [("ok", 0.0, False, 4)] * 3
    assert service.stats()["live"] == 0 and service.stats()["released"] == 3


def test_judge_threshold(faulty):
    server, _ = faulty  # its /evaluate answers 0.5

    class Config:
        class task_judge:  # noqa: N801 (stands in for the typed config)
            env_success_threshold = 0.5

    async def judged(threshold_config):
        sessions = EnvSessions(EnvServiceClient(server.url, "t", FAST))
        instance = await sessions.open(Task(task_id="a", main_query=""), "e")
        from astuner.workflow.base import WorkflowTask

        result = await EnvServiceJudge(threshold_config).compute_reward(
            WorkflowTask(task=instance.task, env=instance), WorkflowOutput()
        )
        await sessions.aclose()
        return result

    assert asyncio.run(judged(Config())) == (0.5, True)
    assert asyncio.run(judged(None)) == (0.5, False)  # default threshold 1.0


def test_exception_and_timeout_still_release(reference, smollm2_tokenizer):
    url, service = reference
    tasks = [Task(task_id=f"train-{i}", main_query="") for i in range(2)]
    episodes = asyncio.run(make_runner(smollm2_tokenizer, url, Explode, ["x"], repeat=2).run(tasks))
    assert {e.status for e in episodes} == {"failed"} and "agent crashed" in episodes[0].error
    episodes = asyncio.run(make_runner(smollm2_tokenizer, url, Hang, ["x"], timeout=0.3).run(tasks))
    assert {e.status for e in episodes} == {"timeout"}
    assert service.stats() == {"live": 0, "created": 6, "released": 6}


@pytest.mark.parametrize("when", ["during the workflow", "during create"])
def test_cancellation_releases(reference, smollm2_tokenizer, when):
    """Ctrl-C cancels the rollout task; with the backbone's final sweep (close) every instance is released.

    Cancelled during the workflow, the episode's own ``finally`` releases it; cancelled while
    ``/create`` is in flight (the server may have created it), the sweep does.
    """
    url, service = reference
    runner = make_runner(smollm2_tokenizer, url, Hang, ["x"], repeat=3)

    async def cancel_mid_episode():
        job = asyncio.create_task(runner.run([Task(task_id="train-0", main_query="")]))
        while (service.stats()["live"] if when == "during create" else len(runner.env.live)) < 3:
            await asyncio.sleep(0.005)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(cancel_mid_episode())
    runner.env.close()
    assert service.stats()["live"] == 0 and service.stats()["created"] == 3
    assert runner.env.live == {}


def test_close_releases_leftovers_without_a_loop(reference):
    url, service = reference
    sessions = EnvSessions(EnvServiceClient(url, "guess_number", FAST))
    asyncio.run(sessions.open(Task(task_id="train-1", main_query=""), "e1"))  # loop ends without release
    assert service.stats()["live"] == 1
    sessions.close()
    assert service.stats()["live"] == 0 and sessions.live == {}


def test_server_dying_mid_episode_fails_the_episode_with_url_and_endpoint(faulty, smollm2_tokenizer):
    server, plan = faulty
    plan.faults["step"] = ["ok"]

    async def die():
        kill(server, plan)

    HOOKS["after_step"] = die

    class PlayTwice(Play):
        async def execute(self, workflow_task, model_tuner):
            await workflow_task.env.step("1")
            await HOOKS["after_step"]()
            await workflow_task.env.step("2")
            return WorkflowOutput(reward=1.0)

    runner = make_runner(smollm2_tokenizer, server.url, PlayTwice, ["x"], env_type="t")
    (episode,) = asyncio.run(runner.run([Task(task_id="a", main_query="")]))
    assert episode.status == "failed"
    assert f"EnvServiceError: env service {server.url} POST /step (instance s0-a-r0-" in episode.error
    assert "the server closed the connection without answering" in episode.error
    assert runner.env.release_failures == 1 and runner.env.live == {}


def test_failed_create_is_a_counted_failure_and_nothing_leaks(faulty, smollm2_tokenizer):
    server, plan = faulty
    plan.faults["create"] = ["500"]
    runner = make_runner(smollm2_tokenizer, server.url, Play, ["x"], env_type="t", repeat=2)
    episodes = asyncio.run(runner.run([Task(task_id="a", main_query="")]))
    assert [e.status for e in episodes] == ["failed", "failed"]
    assert all(f"{server.url} POST /create" in e.error and "HTTP 500" in e.error for e in episodes)
    assert plan.calls["create"] == 4 and plan.calls["release"] == 0  # an error answer created nothing
    assert runner.env.live == {}


def test_hanging_create_is_released_at_close(faulty, smollm2_tokenizer):
    """A create that timed out may have happened on the server: it is released by the final sweep."""
    server, plan = faulty
    plan.faults["create"], plan.hang_seconds = ["hang"], 2.5
    runner = make_runner(smollm2_tokenizer, server.url, Play, ["x"], env_type="t")

    async def go():
        (episode,) = await runner.run([Task(task_id="a", main_query="")])
        assert episode.status == "failed" and "no answer within the timeout" in episode.error
        assert len(runner.env.live) == 1
        await runner.env.aclose()

    asyncio.run(go())
    assert runner.env.live == {} and plan.calls["release"] == 1


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("7", {"role": "assistant", "content": "7"}),
        ({"role": "assistant", "content": "8"}, {"role": "assistant", "content": "8"}),
    ],
)
def test_action_message(action, message):
    assert action_message(action) == message


def test_action_message_from_an_agentscope_msg_and_bad_types():
    from agentscope.message import Msg

    assert action_message(Msg("player", "My guess is 4", role="assistant")) == {
        "role": "assistant",
        "content": "My guess is 4",
    }
    with pytest.raises(TypeError, match="env.step takes a str"):
        action_message(42)
