"""Dynamic sampling's choice of groups (astuner/algo/dynamic_sampling.py), on hand-made episodes."""

from __future__ import annotations

from astuner.algo.dynamic_sampling import GroupFilter, groups_with_signal
from astuner.context.types import Sample
from astuner.rollout.runner import Episode

SAMPLE = Sample(prompt_ids=[1], response_ids=[2], loss_mask=[1], logprobs=[-0.1], call_indices=[0])


def group(task: str, *rewards, status: str = "ok") -> list[Episode]:
    return [
        Episode(f"{task}-r{i}", task, i, status, reward=r if status == "ok" else None, samples=[SAMPLE])
        for i, r in enumerate(rewards)
    ]


def test_signal_is_a_group_whose_members_rewards_differ():
    episodes = group("a", 0.0, 1.0) + group("b", 1.0, 1.0) + group("c", 0.5, 0.5, status="failed")
    episodes += group("d", 1.0) + [Episode("d-r1", "d", 1, "timeout")]  # one member left: no baseline
    assert groups_with_signal(episodes) == (["a"], ["b", "c", "d"])


def test_the_filter_keeps_the_first_groups_with_signal_and_counts_the_rest():
    f = GroupFilter(want=2)
    first = group("a", 0.0, 1.0) + group("b", 1.0, 1.0)
    f.add(first)
    assert not f.full and f.seen() == {"a", "b"}
    refill = group("c", 1.0, 1.0) + group("d", 0.0, 0.5) + group("e", 0.0, 1.0)
    f.add(refill)
    assert f.full
    assert {e.task_id for e in f.trained(first + refill)} == {"a", "d"}  # e came after the batch was full
    assert f.metrics() == {
        "groups_generated": 5,
        "groups_kept": 2,
        "groups_dropped": 2,
        "groups_unused": 1,
        "sampling_rounds": 2,
    }


def test_an_empty_round_still_counts_toward_the_cap():
    f = GroupFilter(want=3)
    f.add(group("a", 1.0, 1.0))
    f.add([])  # every task of the refill batch was already in this step
    assert f.rounds == 2 and not f.full and f.trained(group("a", 1.0, 1.0)) == []
