"""verl computes astuner's algorithm: its own functions, configured by astuner's translation, give the
debug backbone's numbers on the same batch (``astuner/algo/semantics.py`` is the table this proves).

- Loss: verl's ``ppo_loss`` (``verl.workers.utils.losses``: ``compute_policy_loss_vanilla`` + ``agg_loss``
  + ``kl_penalty``, as its actor runs it), with the actor config ``to_verl`` writes, against
  ``policy_loss_sum / trained tokens`` (what ``PolicyTrainer`` backpropagates): value and gradient,
  on one micro-batch and split into two (verl's global token mean), zero-advantage rows included.
- Advantages: the adapter's ``episode_outputs`` for a step with failed, timed-out, sample-less, lone,
  mad and multi-timeline episodes, keyed as verl's v1 worker keys them, through verl's v1
  ``compute_advantage_for_multi_trajectories``, against ``DebugRun._train_items``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astuner.algo.policy_loss import policy_loss_sum
from astuner.backbone.verl.agent_loop import episode_outputs
from astuner.backbone.verl.config import to_verl
from astuner.config.load import load_config
from tests.algo import parity_cases as cases


def _translated(verl_experiment, tmp_path, extra: list[str]):
    loaded = load_config(verl_experiment(), extra, backbone="verl")
    return loaded, to_verl(loaded, tmp_path / "records").config


def _dataclass(config, section: str):
    """A section of the translated config as verl's own dataclass (what its workers build from it)."""
    from omegaconf import OmegaConf
    from verl.utils.config import omega_conf_to_dataclass

    resolved = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    return omega_conf_to_dataclass(OmegaConf.select(resolved, section))


def _verl_loss(actor, batch: cases.LossBatch, rows: list[int], total_tokens: int, logp: torch.Tensor):
    """verl's ``ppo_loss`` on ``rows`` of the batch as one micro-batch of a mini-batch with ``total_tokens``."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.losses import ppo_loss

    fields, output = cases.model_inputs(batch, rows, logp)
    data = TensorDict(fields, batch_size=[len(rows)])
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=total_tokens, global_batch_size=len(batch.resp_lens))
    loss, _ = ppo_loss(actor, output, data)
    return loss


@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
def test_loss_and_gradient_equal_verls_ppo_loss(verl_experiment, tmp_path, kl_coef):
    algo = ["astuner.algorithm.clip_ratio_high=0.28", f"astuner.algorithm.kl_coef={kl_coef}"]
    loaded, config = _translated(verl_experiment, tmp_path, algo)
    actor = _dataclass(config, "actor_rollout_ref.actor")
    batch = cases.loss_batch()
    total = int(batch.mask.sum())

    ours, ours_grad = cases.debug_loss(batch, loaded.astuner.algorithm)

    theirs_logp = batch.logp.clone().requires_grad_()
    halves = [[0, 1], [2, 3, 4]]  # two micro-batches of one mini-batch: verl divides each by the global count
    theirs = sum(_verl_loss(actor, batch, rows, total, theirs_logp) for rows in halves)
    theirs.backward()
    assert ours == pytest.approx(float(theirs), rel=1e-5, abs=1e-7)
    assert torch.allclose(ours_grad * batch.mask, theirs_logp.grad * batch.mask, atol=1e-7)
    whole = _verl_loss(actor, batch, [0, 1, 2, 3, 4], total, batch.logp)
    assert float(whole) == pytest.approx(float(theirs), rel=1e-5)


def test_a_zero_advantage_row_counts_in_verls_token_mean_as_in_the_debug_trainer(verl_experiment, tmp_path):
    """The debug trainer skips the forward pass of a zero-advantage sample (no KL term) but keeps its tokens
    in the denominator: the same loss as verl's, which computes every row."""
    loaded, config = _translated(verl_experiment, tmp_path, [])
    actor = _dataclass(config, "actor_rollout_ref.actor")
    batch = cases.loss_batch()
    total = int(batch.mask.sum())
    keep = [i for i in range(len(batch.resp_lens)) if batch.adv[i] != 0]
    sub = [torch.stack([getattr(batch, n)[i] for i in keep]) for n in ("logp", "old", "mask")]
    ours, _ = policy_loss_sum(sub[0], sub[1], batch.adv[keep], sub[2], loaded.astuner.algorithm)
    theirs = _verl_loss(actor, batch, list(range(len(batch.resp_lens))), total, batch.logp)
    assert float(ours / total) == pytest.approx(float(theirs), rel=1e-5)


def _verl_advantages(eps, config) -> dict[tuple[str, int], float]:
    """The adapter's outputs for ``eps``, as verl's v1 worker stores them, through verl's v1 advantage step."""
    from verl.protocol import DataProto
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    keys, outputs, where = [], [], []
    for e in eps:
        for i, out in enumerate(episode_outputs(e, seconds=0.0, versions=(1, 1))):
            keys.append(f"{e.task_id}_{e.repeat_index}_{i}")  # {uid}_{session_id}_{index}, as AgentLoopWorkerTQ
            outputs.append(out)
            where.append((e.episode_id, i))
    width = max(len(o.response_ids) for o in outputs)
    mask, scores = torch.zeros(len(outputs), width), torch.zeros(len(outputs), width)
    for row, o in enumerate(outputs):
        mask[row, : len(o.response_mask)] = torch.tensor(o.response_mask, dtype=torch.float32)
        scores[row, len(o.response_ids) - 1] = o.reward_score  # verl puts the reward on the last token
    data = DataProto.from_dict(
        tensors={"response_mask": mask, "token_level_rewards": scores},
        non_tensors={"uid": np.array([k.rsplit("_", 2)[0] for k in keys], dtype=object)},
    )
    algo = _dataclass(config, "algorithm")
    data = compute_advantage_for_multi_trajectories(
        data,
        batch_keys=keys,
        adv_estimator=config.algorithm.adv_estimator,
        num_repeat=config.actor_rollout_ref.rollout.n,
        norm_adv_by_std_in_grpo=config.algorithm.norm_adv_by_std_in_grpo,
        config=algo,
    )
    adv = data.batch["advantages"]
    first = mask.argmax(dim=1)
    return {w: float(adv[row, first[row]]) for row, w in enumerate(where)}


@pytest.mark.parametrize(("estimator", "timelines"), cases.SETTINGS)
def test_group_advantages_with_failed_episodes_equal_verls(verl_experiment, tmp_path, estimator, timelines):
    loaded, config = _translated(verl_experiment, tmp_path, cases.overrides(estimator, timelines))
    eps = cases.episodes(timelines)
    ours = cases.debug_advantages(eps, loaded.astuner)
    theirs = _verl_advantages(eps, config)
    assert set(theirs) == set(ours)  # the same samples are trained: no row for an episode outside its group
    for key, value in ours.items():
        assert theirs[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    if timelines:
        assert ours[("a-r3", 0)] == ours[("a-r3", 1)]  # both timelines get the episode's advantage
