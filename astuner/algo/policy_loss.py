"""Dual-clip PPO policy loss and the KL-to-reference term over loss-masked tokens (pure torch functions).

The forms are verl 0.9.1's ``compute_policy_loss_vanilla`` / ``kl_penalty("low_var_kl")`` and
Trinity-RFT 0.6.0's ``PPOPolicyLossFn`` / ``LowVarKLFn``, clamps included, so the debug backbone
trains the same objective (``tests/backbone/{verl,trinity}/test_*_algorithm_parity.py`` check it).

The rollout engine's logprobs are the "old" logprobs (verl: ``rollout_correction.bypass_mode``,
Trinity: ``bypass_old_logprobs``): each step is on-policy up to the numeric difference between
the engine and the trainer, which the clip also bounds.

Losses are returned summed over trained tokens: the caller divides by the mini-batch's trained-token
count, so micro-batches add up to the mini-batch's token mean (verl's ``agg_loss`` "token-mean" with
the global ``batch_num_tokens``).
"""

from __future__ import annotations

from typing import Any

import torch

LOG_RATIO_CLAMP = 20.0  # both upstreams clamp log(pi/pi_old) and log(ref/pi) to +-20 before exp
KL_CLAMP = 10.0  # and the k3 estimate to +-10


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_ratio_c: float = 3.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Dual-clip PPO loss, summed over masked tokens.

    Per token: ``max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))``; for ``A < 0`` that is further
    capped at ``-A clip_ratio_c`` (dual clip: a token whose ratio exploded cannot dominate the step).

    Args:
        logp / old_logp: [B, T] logprobs of the sampled tokens under the current / rollout policy.
        advantages: [B] one advantage per sequence (broadcast over its tokens), or [B, T].
        mask: [B, T] 1 for trained (sampled) tokens.

    Returns:
        the loss summed over masked tokens, and detached statistics (means over masked tokens).
    """
    mask = mask.to(logp.dtype)
    log_ratio = torch.clamp(logp - old_logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    clip1 = torch.maximum(unclipped, clipped)
    dual = torch.minimum(-adv * clip_ratio_c, clip1)
    per_token = torch.where(adv < 0, dual, clip1)
    loss = (per_token * mask).sum()
    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        stats = {
            "clipfrac": float(((clipped > unclipped).to(logp.dtype) * mask).sum() / n),
            "clipfrac_lower": float(((clip1 > -adv * clip_ratio_c) & (adv < 0)).to(logp.dtype).mul(mask).sum() / n),
            "ratio_mean": float((ratio * mask).sum() / n),
            "approx_kl": float((0.5 * log_ratio**2 * mask).sum() / n),
        }
    return loss, stats


def kl_low_var(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """The k3 estimator of KL(pi || ref) per token: exp(ref - logp) - (ref - logp) - 1 (>= 0), clamped."""
    delta = (ref_logp - logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return (torch.exp(delta) - delta - 1).clamp(-KL_CLAMP, KL_CLAMP)


def policy_loss_sum(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    algorithm: Any,
    ref_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The debug trainer's whole per-micro-batch loss: dual-clip PPO plus ``kl_coef`` x k3 KL, summed.

    Both terms are summed over the same masked tokens, so dividing by the mini-batch's trained tokens
    gives verl's ``pg_loss + kl_loss_coef * kl_loss`` (both ``agg_loss`` token-mean).

    Args:
        algorithm: ``AstunerConfig.algorithm`` (clip ratios, ``clip_ratio_c``, ``kl_coef``).
        ref_logp: [B, T] reference logprobs; required when ``algorithm.kl_coef > 0``.
    """
    a = algorithm
    loss, stats = ppo_clip_loss(logp, old_logp, advantages, mask, a.clip_ratio_low, a.clip_ratio_high, a.clip_ratio_c)
    stats["kl_ref"] = 0.0
    if a.kl_coef > 0:
        if ref_logp is None:
            raise ValueError("algorithm.kl_coef > 0 needs the reference logprobs")
        kl = (kl_low_var(logp, ref_logp) * mask.to(logp.dtype)).sum()
        loss = loss + a.kl_coef * kl
        stats["kl_ref"] = float(kl.detach())  # summed, like the loss
    return loss, stats
