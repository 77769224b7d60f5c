"""RL algorithm pieces as pure functions: advantages, the policy loss, and which episodes form a group."""

from astuner.algo.advantages import ESTIMATORS, compute_advantages, zero_signal_groups
from astuner.algo.policy_loss import kl_low_var, policy_loss_sum, ppo_clip_loss
from astuner.algo.semantics import enters_group

__all__ = [
    "ESTIMATORS",
    "compute_advantages",
    "enters_group",
    "kl_low_var",
    "policy_loss_sum",
    "ppo_clip_loss",
    "zero_signal_groups",
]
