"""The hang watchdog: a step in which nothing progresses fails with a report, never waits forever."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest

from astuner import Workflow, WorkflowOutput
from astuner.rollout.runner import RolloutHangError
from tests.conftest import REPO
from tests.rollout.test_runner import TASKS, AskOnce, make_runner


class StuckEngine:
    """An engine whose requests never complete (a wedged server): a fault injected on purpose."""

    async def generate(self, prompt_ids, sampling):
        await asyncio.Event().wait()


class StuckInUserCode(Workflow):
    async def execute(self, workflow_task, model_tuner):
        await asyncio.Event().wait()
        return WorkflowOutput(reward=0.0)


def test_a_wedged_engine_fails_the_step_with_a_report(smollm2_tokenizer):
    runner, _ = make_runner(smollm2_tokenizer, AskOnce, ["x"], episode_timeout=3600, hang_timeout=1.0, max_env_worker=2)
    runner.engine = StuckEngine()
    t0 = time.monotonic()
    with pytest.raises(RolloutHangError) as err:
        asyncio.run(runner.run(TASKS))
    assert time.monotonic() - t0 < 5
    message = str(err.value)
    assert "no episode finished and the engine returned nothing for" in message
    assert "2 in an engine request (longest: s0-t0-r0" in message
    assert "4 in the queue for a max_env_worker slot" in message


def test_stuck_workflow_code_is_named(smollm2_tokenizer):
    runner, _ = make_runner(smollm2_tokenizer, StuckInUserCode, ["x"], episode_timeout=3600, hang_timeout=1.0)
    with pytest.raises(RolloutHangError, match=r"4 in workflow code \(longest: "):
        asyncio.run(runner.run(TASKS))


def test_slow_but_progressing_steps_are_not_hung(smollm2_tokenizer):
    class Slow(AskOnce):
        async def execute(self, workflow_task, model_tuner):
            await asyncio.sleep(0.4 * (int(workflow_task.task.task_id[1:]) + 1))
            return await super().execute(workflow_task, model_tuner)

    # the whole step takes ~1.2 s, longer than hang_timeout, but something finishes every 0.4 s
    runner, _ = make_runner(smollm2_tokenizer, Slow, ["\\boxed{1}"], hang_timeout=0.7, max_env_worker=8)
    episodes = asyncio.run(runner.run(TASKS))
    assert all(e.status == "ok" for e in episodes)


def test_zero_turns_the_watchdog_off(smollm2_tokenizer):
    runner, _ = make_runner(smollm2_tokenizer, StuckInUserCode, ["x"], episode_timeout=1.0, hang_timeout=0)
    assert all(e.status == "timeout" for e in asyncio.run(runner.run(TASKS)))


def test_a_loop_blocked_by_synchronous_code_fails_that_episode_only(tmp_path):
    """time.sleep in a workflow freezes the event loop; the watchdog thread raises inside it.

    In a subprocess: the watchdog signals the main thread, which must not be pytest's.
    """
    script = tmp_path / "blocked.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, time
            from astuner import Workflow, WorkflowOutput
            from astuner.model.embedded import materialize_tokenizer
            from tests.rollout.test_runner import TASKS, make_runner
            from transformers import AutoTokenizer

            class Blocking(Workflow):
                async def execute(self, workflow_task, model_tuner):
                    if workflow_task.task.task_id == "t1" and workflow_task.repeat_index == 0:
                        time.sleep(3600)
                    return WorkflowOutput(reward=1.0)

            tok = AutoTokenizer.from_pretrained(str(materialize_tokenizer("smollm2-135m")))
            runner, _ = make_runner(tok, Blocking, ["x"], episode_timeout=3600, hang_timeout=1.0)
            for e in asyncio.run(runner.run(TASKS)):
                print(e.episode_id, e.status, "RolloutHangError" in (e.error or ""))
            """
        )
    )
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.split("\n")
    assert "s0-t1-r0 failed True" in lines
    assert sum(line.endswith("ok False") for line in lines) == 5
    assert "the event loop was blocked for" in r.stderr and "time.sleep(3600)" in r.stderr
    assert time.monotonic() - t0 < 60
