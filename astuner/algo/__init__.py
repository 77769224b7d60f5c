"""RL algorithm pieces as pure functions: advantages and the policy loss."""

from astuner.algo.advantages import ESTIMATORS, compute_advantages, zero_signal_groups
from astuner.algo.policy_loss import kl_low_var, ppo_clip_loss

__all__ = ["ESTIMATORS", "compute_advantages", "kl_low_var", "ppo_clip_loss", "zero_signal_groups"]
