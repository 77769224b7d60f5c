"""Step planning and the data order of the debug loop."""

from __future__ import annotations

import pytest

from astuner import Task
from astuner.backbone.debug.checkpoint import TrainState
from astuner.backbone.debug.run import batch_for, plan_steps

TASKS = [Task(task_id=str(i), main_query="q") for i in range(10)]


def test_plan_steps():
    assert plan_steps(10, 4, 3, None) == 6  # two full batches per epoch
    assert plan_steps(10, 4, 3, 5) == 5
    assert plan_steps(2, 4, 2, None) == 2  # fewer tasks than a batch: one step per epoch


def test_batches_cover_an_epoch_then_reshuffle_deterministically():
    state, seen = TrainState(), []
    for _ in range(2):
        batch, state = batch_for(TASKS, state, 5, seed=0)
        seen += [t.task_id for t in batch]
    assert sorted(seen) == [str(i) for i in range(10)] and state == TrainState(step=2, epoch=0, batch_index=2)
    batch, state = batch_for(TASKS, state, 5, seed=0)
    assert state == TrainState(step=3, epoch=1, batch_index=1)
    again, _ = batch_for(TASKS, TrainState(step=2, epoch=0, batch_index=2), 5, seed=0)
    assert [t.task_id for t in again] == [t.task_id for t in batch]  # resuming reads the same batch


def test_failed_step_guard_stops_after_the_limit_in_a_row():
    import pytest

    from astuner.backbone.debug.run import FailedStepGuard
    from astuner.rollout.runner import Episode, RolloutFailingError

    def step(*statuses):
        return [
            Episode(f"e{i}", "t", i, s, error="Traceback ...\nEnvServiceError: connection refused")
            for i, s in enumerate(statuses)
        ]

    guard = FailedStepGuard(3)
    guard.observe(1, step("failed", "failed"))
    guard.observe(2, step("failed", "timeout"))
    guard.observe(3, step("ok", "failed"))  # one ok episode resets the count
    guard.observe(4, step("failed"))
    guard.observe(5, step("timeout"))
    with pytest.raises(
        RolloutFailingError,
        match=r"3 training steps in a row \(steps 4-6\) .*"
        r"1 failed, 0 timeout; first error: EnvServiceError: connection refused",
    ):
        guard.observe(6, step("failed"))
    never = FailedStepGuard(0)
    for n in range(10):
        never.observe(n, step("failed"))


def test_train_items_follow_the_group_rule():
    """Members only (ok, a reward, a sample); every member's sample is kept, zero advantage included."""
    from types import SimpleNamespace

    from astuner.backbone.debug.run import DebugRun
    from astuner.config.schema import AstunerConfig
    from tests.algo import parity_cases as cases

    eps = cases.episodes(timelines=True)
    metrics: dict = {}
    items = DebugRun._train_items(SimpleNamespace(cfg=AstunerConfig()), eps, metrics)
    adv = cases.debug_advantages(eps, AstunerConfig())
    assert len(items) == 10 and metrics["samples_zero_advantage"] == 2  # group c carries no signal
    assert not any(e in {k[0] for k in adv} for e in ("a-r2", "b-r1", "b-r2", "b-r3"))  # left out of their group
    assert adv[("b-r0", 0)] == pytest.approx(1.0, abs=1e-5)  # a lone member keeps its reward (mean 0, std 1)
    assert adv[("a-r3", 0)] == adv[("a-r3", 1)] < 0  # both timelines get the episode's advantage
    assert [e.advantage for e in eps if e.episode_id in ("a-r2", "b-r3")] == [None, None]
