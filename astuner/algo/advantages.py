"""Episode advantages from rewards, per task group: GRPO, RLOO, REINFORCE++ (pure functions).

Every sample (timeline) of an episode gets its episode's advantage on every sampled token.

- ``grpo``: ``(r - mean_group) / (std_group + eps)`` (``norm_by_std=False`` drops the division).
- ``rloo``: ``r - mean(other rewards of the group)`` (leave-one-out baseline, unbiased).
- ``reinforce_plus_plus``: ``r - mean_group``, then whitened over the whole batch.

A group whose rewards are all equal carries no signal (all its advantages are 0 under GRPO and
RLOO); ``zero_signal_groups`` counts them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence

ESTIMATORS = ("grpo", "rloo", "reinforce_plus_plus")


def _groups(group_ids: Sequence[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(group_ids):
        out[g].append(i)
    return out


def grpo_advantages(
    rewards: Sequence[float], group_ids: Sequence[str], norm_by_std: bool = True, eps: float = 1e-6
) -> list[float]:
    adv = [0.0] * len(rewards)
    for members in _groups(group_ids).values():
        rs = [rewards[i] for i in members]
        mean = statistics.fmean(rs)
        std = statistics.pstdev(rs) if len(rs) > 1 else 0.0
        for i in members:
            adv[i] = (rewards[i] - mean) / (std + eps) if norm_by_std else rewards[i] - mean
    return adv


def rloo_advantages(rewards: Sequence[float], group_ids: Sequence[str]) -> list[float]:
    adv = [0.0] * len(rewards)
    for members in _groups(group_ids).values():
        if len(members) < 2:
            continue  # no baseline without a second episode
        total = sum(rewards[i] for i in members)
        for i in members:
            adv[i] = rewards[i] - (total - rewards[i]) / (len(members) - 1)
    return adv


def reinforce_pp_advantages(rewards: Sequence[float], group_ids: Sequence[str], eps: float = 1e-6) -> list[float]:
    centred = grpo_advantages(rewards, group_ids, norm_by_std=False)
    if len(centred) < 2:
        return centred
    mean, std = statistics.fmean(centred), statistics.pstdev(centred)
    return [(a - mean) / (std + eps) for a in centred]


def compute_advantages(
    estimator: str, rewards: Sequence[float], group_ids: Sequence[str], norm_by_std: bool = True
) -> list[float]:
    """Dispatch on ``astuner.algorithm.adv_estimator``."""
    if estimator == "grpo":
        return grpo_advantages(rewards, group_ids, norm_by_std)
    if estimator == "rloo":
        return rloo_advantages(rewards, group_ids)
    if estimator == "reinforce_plus_plus":
        return reinforce_pp_advantages(rewards, group_ids)
    raise ValueError(f"adv_estimator {estimator!r} is not one of {', '.join(ESTIMATORS)}")


def zero_signal_groups(rewards: Sequence[float], group_ids: Sequence[str]) -> int:
    """Groups whose rewards are all equal (they teach nothing under GRPO/RLOO)."""
    return sum(1 for m in _groups(group_ids).values() if len({rewards[i] for i in m}) == 1)
