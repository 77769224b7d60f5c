"""Advantages against numbers worked out by hand (the parity tests compare them with verl's and Trinity's)."""

from __future__ import annotations

import math

import pytest

from astuner.algo import compute_advantages, zero_signal_groups

REWARDS = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
GROUPS = ["a", "a", "a", "a", "b", "b"]


def test_grpo_uses_the_unbiased_std():
    adv = compute_advantages("grpo", REWARDS, GROUPS)
    # group a: mean 0.25, sample std sqrt(0.75/3) = 0.5 -> (1-0.25)/0.5 = 1.5, -0.25/0.5 = -0.5
    assert adv[:4] == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-5)
    assert adv[4:] == [0.0, 0.0]  # all equal: no signal
    assert compute_advantages("grpo", REWARDS, GROUPS, norm_by_std=False)[:2] == pytest.approx([0.75, -0.25])


def test_a_group_of_one_has_mean_zero_and_std_one():
    """Its siblings failed: verl and Trinity give it its reward (no baseline), so does astuner."""
    assert compute_advantages("grpo", [1.0, 0.0, 1.0], ["a", "b", "b"]) == pytest.approx(
        [1 / (1 + 1e-6), -0.7071, 0.7071], abs=1e-4
    )
    assert compute_advantages("rloo", [0.5, 0.0, 1.0], ["a", "b", "b"]) == pytest.approx([0.5, -1.0, 1.0])


def test_rloo():
    adv = compute_advantages("rloo", REWARDS, GROUPS)
    # 1 - mean(0,0,0) = 1; 0 - mean(1,0,0) = -1/3
    assert adv == pytest.approx([1.0, -1 / 3, -1 / 3, -1 / 3, 0.0, 0.0])


def test_reinforce_plus_plus_whitens_over_trained_tokens():
    adv = compute_advantages("reinforce_plus_plus", [1.0, 0.0], ["a", "a"], token_counts=[1, 3])
    # tokens carry 1, 0, 0, 0: mean 0.25, unbiased var 0.75/3 = 0.25 -> (1-0.25)/0.5, -0.25/0.5
    assert adv == pytest.approx([1.5, -0.5], abs=1e-6)
    with pytest.raises(ValueError, match="pass token_counts"):
        compute_advantages("reinforce_plus_plus", [1.0, 0.0], ["a", "a"])
    assert compute_advantages("reinforce_plus_plus", [1.0], ["a"], token_counts=[1]) == [0.0]
    assert not any(math.isnan(x) for x in compute_advantages("reinforce_plus_plus", [1.0, 1.0], "ab", None, [2, 2]))


def test_zero_signal_groups_and_unknown_estimator():
    assert zero_signal_groups(REWARDS, GROUPS) == 1
    with pytest.raises(ValueError, match="not one of grpo, rloo, reinforce_plus_plus"):
        compute_advantages("ppo", REWARDS, GROUPS)
