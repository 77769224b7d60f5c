"""Dynamic sampling (DAPO): a step trains only on task groups whose rewards differ.

Why: under GRPO and RLOO a group whose members all got the same reward has advantage 0 for every
member, so its episodes cost a rollout and teach nothing. Once a policy solves (or fails) most tasks
consistently, most groups are like that: on the H200 the main job had 26-30 of 32 such groups per
step from step 14 on. With ``algorithm.dynamic_sampling.enable`` a step drops those groups and rolls
out fresh tasks, a batch at a time, until it holds ``data.train_batch_size`` groups with signal or
``max_extra_batches`` extra batches were rolled out (then it trains on the groups it has).

Who is in a group is ``semantics.enters_group``'s rule, as everywhere: a task whose episodes all
failed has no members, so it has no signal either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from astuner.algo.semantics import enters_group


def groups_with_signal(episodes: Iterable[Any]) -> tuple[list[str], list[str]]:
    """Task ids (in order of first appearance) whose group's rewards differ, and those whose do not."""
    rewards: dict[str, set[float]] = {}
    for e in episodes:
        members = rewards.setdefault(e.task_id, set())
        if enters_group(e):
            members.add(float(e.reward))
    signal = [t for t, r in rewards.items() if len(r) > 1]
    return signal, [t for t, r in rewards.items() if len(r) <= 1]


class GroupFilter:
    """The groups of one training step, gathered over rollout rounds (the batch, then refills).

    ``add`` each round's episodes; ``full`` says when ``want`` groups with signal are in; ``trained``
    picks the episodes of the first ``want`` of them (in the order they were rolled out).
    """

    def __init__(self, want: int):
        self.want = want
        self.signal: list[str] = []
        self.zero: list[str] = []
        self.rounds = 0

    def add(self, episodes: Sequence[Any]) -> None:
        signal, zero = groups_with_signal(episodes)
        self.signal += signal
        self.zero += zero
        self.rounds += 1

    @property
    def full(self) -> bool:
        return len(self.signal) >= self.want

    def seen(self) -> set[str]:
        return set(self.signal) | set(self.zero)

    def trained(self, episodes: Iterable[Any]) -> list[Any]:
        keep = set(self.signal[: self.want])
        return [e for e in episodes if e.task_id in keep]

    def metrics(self) -> dict[str, int]:
        """``groups_generated`` = kept + dropped (no signal) + unused (signal beyond the batch)."""
        kept = min(len(self.signal), self.want)
        return {
            "groups_generated": len(self.signal) + len(self.zero),
            "groups_kept": kept,
            "groups_dropped": len(self.zero),
            "groups_unused": len(self.signal) - kept,
            "sampling_rounds": self.rounds,
        }
