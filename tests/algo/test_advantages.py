"""Advantages against numbers worked out by hand."""

from __future__ import annotations

import pytest

from astuner.algo import compute_advantages, zero_signal_groups

REWARDS = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
GROUPS = ["a", "a", "a", "a", "b", "b"]


def test_grpo():
    adv = compute_advantages("grpo", REWARDS, GROUPS)
    # group a: mean 0.25, pstd sqrt(0.1875) = 0.4330 -> (1-0.25)/0.4330 = 1.7321, -0.25/0.4330 = -0.5774
    assert adv[:4] == pytest.approx([1.7321, -0.5774, -0.5774, -0.5774], abs=1e-4)
    assert adv[4:] == [0.0, 0.0]  # all equal: no signal
    assert compute_advantages("grpo", REWARDS, GROUPS, norm_by_std=False)[:2] == pytest.approx([0.75, -0.25])


def test_rloo():
    adv = compute_advantages("rloo", REWARDS, GROUPS)
    # 1 - mean(0,0,0) = 1; 0 - mean(1,0,0) = -1/3
    assert adv == pytest.approx([1.0, -1 / 3, -1 / 3, -1 / 3, 0.0, 0.0])


def test_reinforce_plus_plus_whitens_over_the_batch():
    adv = compute_advantages("reinforce_plus_plus", REWARDS, GROUPS)
    # centred per group: [.75,-.25,-.25,-.25,0,0]; batch mean 0, pstd sqrt(0.75^2+3*0.0625)/sqrt(6) = 0.3536
    assert adv == pytest.approx([2.1213, -0.7071, -0.7071, -0.7071, 0.0, 0.0], abs=1e-4)


def test_zero_signal_groups_and_unknown_estimator():
    assert zero_signal_groups(REWARDS, GROUPS) == 1
    with pytest.raises(ValueError, match="not one of grpo, rloo, reinforce_plus_plus"):
        compute_advantages("ppo", REWARDS, GROUPS)
