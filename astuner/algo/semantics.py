"""One algorithm on every backbone: the decisions astuner takes once, for debug, verl and Trinity.

docs/concepts/algorithm.md has the table (one row per decision, one column per
backbone: the translated key, the adapter behaviour or the config error that makes it hold); the
parity tests (``tests/backbone/{verl,trinity}/test_*_algorithm_parity.py``) call each backbone's own
functions on one batch and compare. The rows, as astuner computes them (``B`` = data.train_batch_size,
``n`` = rollout.num_repeat):

- Policy loss: dual-clip PPO (``clip_ratio_low/high``, ``clip_ratio_c``), log-ratio clamped to +-20,
  no entropy term (``policy_loss.ppo_clip_loss``).
- The ratio: current policy over the engine's logprobs, both at the sampling temperature; the "old"
  policy is never recomputed.
- Aggregation: token mean over the trained tokens of an optimizer step's samples, zero-advantage
  samples included (``policy_loss.policy_loss_sum`` / the step's token count).
- Optimizer steps: one per ``B x n`` samples, each sample once; a step without gradient still steps.
- Advantages (``advantages``): GRPO with the unbiased std and ``eps`` 1e-6 (or without the std),
  RLOO, REINFORCE++ whitened over trained tokens; a group of one has mean 0 and std 1.
- KL: ``kl_coef x k3`` in the loss (clamped to +-10), never in the reward.
- Group membership: ``enters_group`` below; failed, timed-out and sample-less episodes are left out.
- Multi-timeline episodes: every sample gets its episode's advantage; the episode counts once.
"""

from __future__ import annotations

from typing import Any


def enters_group(episode: Any) -> bool:
    """Whether an episode is a member of its task's group (its reward enters mean, std and baselines).

    Only an episode that ended ``ok`` with a reward and left at least one training sample: a failed or
    timed-out one has no reward to compare, and one whose samples were all dropped (prompt over
    ``data.max_prompt_length``) has nothing its advantage could train. A "mad" episode is ``ok`` with
    ``rollout.agent_madness_reward``, so it is a member. The same rule runs in the debug backbone
    (``_train_items``), the verl adapter (``episode_outputs``) and the Trinity adapter
    (``episode_experiences``).
    """
    return episode.status == "ok" and episode.reward is not None and bool(episode.samples)
