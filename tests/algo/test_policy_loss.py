"""PPO-clip loss against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from astuner.algo import kl_low_var, ppo_clip_loss


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
    # A<0: max(-1.8, -1.2)=-1.2 -> +1.8; max(-0.2,-0.8) -> -(-0.8)... per token: max(1.8,1.2)=1.8, max(0.2,0.8)=0.8
    assert loss.item() == pytest.approx(2.6, abs=1e-5)


def test_gradient_flows_only_through_masked_tokens():
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    loss, _ = ppo_clip_loss(logp, logp.detach(), torch.tensor([1.0]), torch.tensor([[1, 0]]))
    loss.backward()
    assert logp.grad.tolist() == [[-1.0, 0.0]]


def test_kl_estimator_is_zero_at_equality_and_positive_elsewhere():
    a = torch.tensor([-1.0, -2.0])
    assert kl_low_var(a, a).tolist() == [0.0, 0.0]
    assert (kl_low_var(a, a + 0.5) > 0).all()
