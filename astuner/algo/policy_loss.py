"""PPO-clip policy loss over loss-masked tokens, and the KL estimators (pure torch functions).

The rollout engine's logprobs are the "old" logprobs: each step is on-policy up to the numeric
difference between the engine and the trainer, which the clip also bounds.
"""

from __future__ import annotations

import torch


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-mean PPO-clip loss.

    Args:
        logp / old_logp: [B, T] logprobs of the sampled tokens under the current / rollout policy.
        advantages: [B] one advantage per sequence (broadcast over its tokens).
        mask: [B, T] 1 for trained (sampled) tokens.

    Returns:
        the loss (summed over masked tokens; the caller divides by the batch's masked-token count, so
        micro-batches add up to a token mean), and detached statistics.
    """
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    loss = (per_token * mask).sum()
    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        stats = {
            "clipfrac": float(((clipped > unclipped).to(logp.dtype) * mask).sum() / n),
            "ratio_mean": float((ratio * mask).sum() / n),
            "approx_kl": float((0.5 * (logp - old_logp) ** 2 * mask).sum() / n),
        }
    return loss, stats


def kl_low_var(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """The k3 estimator of KL(pi || ref) per token: exp(ref - logp) - (ref - logp) - 1 (>= 0)."""
    delta = (ref_logp - logp).clamp(-20, 20)
    return torch.exp(delta) - delta - 1
