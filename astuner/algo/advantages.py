"""Episode advantages from rewards, per task group: GRPO, RLOO, REINFORCE++ (pure functions).

Every sample (timeline) of an episode gets its episode's advantage on every sampled token. The
formulas are verl 0.9.1's and Trinity-RFT 0.6.0's (``astuner/algo/semantics.py`` has the table;
the parity tests in ``tests/backbone/{verl,trinity}`` call their functions on the same batch):

- ``grpo``: ``(r - mean_group) / (std_group + eps)``, ``std`` the unbiased (n-1) standard deviation,
  ``eps = 1e-6``; ``norm_by_std=False`` drops the division (Dr. GRPO).
- ``rloo``: ``r - mean(other rewards of the group)`` (leave-one-out baseline).
- ``reinforce_plus_plus``: no group baseline; the rewards are whitened over the batch's trained
  tokens (each episode weighs as many times as it has trained tokens; unbiased variance,
  ``(r - mean) / sqrt(var + 1e-8)``), as verl's and Trinity's REINFORCE++ whiten token returns.

A group of one episode (its siblings failed) has mean 0 and std 1 there, as in both upstreams: its
advantage is its reward (RLOO: its reward). A group whose rewards are all equal carries no signal
(all its advantages are 0 under GRPO and RLOO); ``zero_signal_groups`` counts them.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence

ESTIMATORS = ("grpo", "rloo", "reinforce_plus_plus")
GRPO_EPS = 1e-6
WHITEN_EPS = 1e-8


def _groups(group_ids: Sequence[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(group_ids):
        out[g].append(i)
    return out


def grpo_advantages(
    rewards: Sequence[float], group_ids: Sequence[str], norm_by_std: bool = True, eps: float = GRPO_EPS
) -> list[float]:
    adv = [0.0] * len(rewards)
    for members in _groups(group_ids).values():
        rs = [rewards[i] for i in members]
        mean, std = (statistics.fmean(rs), statistics.stdev(rs)) if len(rs) > 1 else (0.0, 1.0)
        for i in members:
            adv[i] = (rewards[i] - mean) / (std + eps) if norm_by_std else rewards[i] - mean
    return adv


def rloo_advantages(rewards: Sequence[float], group_ids: Sequence[str]) -> list[float]:
    adv = list(map(float, rewards))  # a lone episode keeps its reward (no baseline), as upstream
    for members in _groups(group_ids).values():
        if len(members) < 2:
            continue
        total = sum(rewards[i] for i in members)
        for i in members:
            adv[i] = rewards[i] - (total - rewards[i]) / (len(members) - 1)
    return adv


def reinforce_pp_advantages(rewards: Sequence[float], token_counts: Sequence[int]) -> list[float]:
    """Rewards whitened over the trained tokens: episode ``i`` counts ``token_counts[i]`` times."""
    n = sum(token_counts)
    if n < 2:
        return [0.0] * len(rewards)  # no variance to divide by (verl raises here)
    mean = sum(r * k for r, k in zip(rewards, token_counts, strict=True)) / n
    var = sum(k * (r - mean) ** 2 for r, k in zip(rewards, token_counts, strict=True)) / (n - 1)
    return [(r - mean) / math.sqrt(var + WHITEN_EPS) for r in rewards]


def compute_advantages(
    estimator: str,
    rewards: Sequence[float],
    group_ids: Sequence[str],
    norm_by_std: bool = True,
    token_counts: Sequence[int] | None = None,
) -> list[float]:
    """Dispatch on ``astuner.algorithm.adv_estimator``.

    Args:
        rewards / group_ids: one per episode that enters its group (``semantics.enters_group``).
        norm_by_std: ``algorithm.norm_adv_by_std`` (GRPO only).
        token_counts: trained tokens of each episode (all its samples); REINFORCE++ needs them.
    """
    if estimator == "grpo":
        return grpo_advantages(rewards, group_ids, norm_by_std)
    if estimator == "rloo":
        return rloo_advantages(rewards, group_ids)
    if estimator == "reinforce_plus_plus":
        if token_counts is None:
            raise ValueError("reinforce_plus_plus whitens over trained tokens: pass token_counts")
        return reinforce_pp_advantages(rewards, token_counts)
    raise ValueError(f"adv_estimator {estimator!r} is not one of {', '.join(ESTIMATORS)}")


def zero_signal_groups(rewards: Sequence[float], group_ids: Sequence[str]) -> int:
    """Groups whose rewards are all equal (they teach nothing under GRPO/RLOO)."""
    return sum(1 for m in _groups(group_ids).values() if len({rewards[i] for i in m}) == 1)
