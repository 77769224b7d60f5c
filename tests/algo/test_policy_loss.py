"""Dual-clip PPO loss and the KL term against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from astuner.algo import kl_low_var, policy_loss_sum, ppo_clip_loss
from astuner.config.schema import AlgorithmConfig


def test_on_policy_loss_is_minus_advantage_times_masked_tokens():
    logp = torch.tensor([[-1.0, -2.0, -3.0]])
    loss, stats = ppo_clip_loss(logp, logp.clone(), torch.tensor([0.5]), torch.tensor([[1, 0, 1]]))
    assert loss.item() == pytest.approx(-1.0)  # two trained tokens x -0.5
    assert stats["ratio_mean"] == pytest.approx(1.0) and stats["clipfrac"] == 0.0


def test_clipping():
    old = torch.tensor([[math.log(0.5), math.log(0.5)]])
    new = torch.tensor([[math.log(0.9), math.log(0.1)]])  # ratios 1.8 and 0.2
    loss, stats = ppo_clip_loss(new, old, torch.tensor([1.0]), torch.ones(1, 2))
    # A>0: min(1.8, 1.2)=1.2 and min(0.2, 0.8)=0.2 -> -(1.2 + 0.2)
    assert loss.item() == pytest.approx(-1.4, abs=1e-5) and stats["clipfrac"] == 0.5
    loss, _ = ppo_clip_loss(new, old, torch.tensor([-1.0]), torch.ones(1, 2))
    # A<0: per token max(1.8, 1.2) = 1.8 and max(0.2, 0.8) = 0.8, both under the dual cap 3.0
    assert loss.item() == pytest.approx(2.6, abs=1e-5)


def test_dual_clip_caps_a_negative_advantage_token():
    old = torch.tensor([[math.log(0.1)]])
    new = torch.tensor([[math.log(0.5)]])  # ratio 5 > clip_ratio_c 3
    loss, stats = ppo_clip_loss(new, old, torch.tensor([-2.0]), torch.ones(1, 1), clip_ratio_c=3.0)
    assert loss.item() == pytest.approx(6.0, abs=1e-5)  # min(2 x 3, max(2 x 5, 2 x 1.2)) = 6
    assert stats["clipfrac_lower"] == 1.0
    loss, _ = ppo_clip_loss(new, old, torch.tensor([2.0]), torch.ones(1, 1), clip_ratio_c=3.0)
    assert loss.item() == pytest.approx(-2.4, abs=1e-5)  # positive advantage: only the ordinary clip


def test_gradient_flows_only_through_masked_tokens():
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    loss, _ = ppo_clip_loss(logp, logp.detach(), torch.tensor([1.0]), torch.tensor([[1, 0]]))
    loss.backward()
    assert logp.grad.tolist() == [[-1.0, 0.0]]


def test_kl_estimator_is_zero_at_equality_positive_elsewhere_and_clamped():
    a = torch.tensor([-1.0, -2.0])
    assert kl_low_var(a, a).tolist() == [0.0, 0.0]
    assert (kl_low_var(a, a + 0.5) > 0).all()
    assert kl_low_var(torch.tensor([-30.0]), torch.tensor([0.0])).item() == 10.0  # exp(20) - 21 clamped


def test_policy_loss_sum_adds_the_kl_term_over_the_same_tokens():
    logp, ref = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -2.0]])
    mask = torch.tensor([[1, 1]])
    algo = AlgorithmConfig(kl_coef=0.1)
    loss, stats = policy_loss_sum(logp, logp.clone(), torch.tensor([0.0]), mask, algo, ref)
    k3 = math.exp(-0.5) + 0.5 - 1
    assert loss.item() == pytest.approx(0.1 * k3, abs=1e-6) and stats["kl_ref"] == pytest.approx(k3, abs=1e-6)
    with pytest.raises(ValueError, match="needs the reference logprobs"):
        policy_loss_sum(logp, logp, torch.tensor([0.0]), mask, algo)
