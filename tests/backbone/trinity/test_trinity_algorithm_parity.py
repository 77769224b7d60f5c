"""Trinity computes astuner's algorithm: its own functions, configured by astuner's translation (checked
by Trinity's ``Config.check_and_update``), give the debug backbone's numbers on the same batch.

- Loss: Trinity's ``TrinityPolicyLoss`` (``trinity.trainer.verl.losses``: its PPO policy loss and KL loss
  functions, composed as its trainer runs them) against ``policy_loss_sum / trained tokens`` (what
  ``PolicyTrainer`` backpropagates): value and gradient on one micro-batch.
- Advantages: the adapter's ``episode_experiences`` for a step with failed, timed-out, sample-less, lone,
  mad and multi-timeline episodes, given their ``eid`` as Trinity's runner does, through the advantage
  function the translated config names (in the explorer's pipeline, or in the trainer for RLOO and
  REINFORCE++, as Trinity places them), against ``DebugRun._train_items``.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from astuner.backbone.trinity.config import assumed_cluster, to_trinity
from astuner.backbone.trinity.workflow import episode_experiences
from astuner.config.load import load_config
from tests.algo import parity_cases as cases


def _translated(trinity_experiment, tmp_path, extra: list[str]):
    """astuner's config, and Trinity's ``Config`` built from the translation as ``trinity run`` builds it."""
    from omegaconf import OmegaConf
    from trinity.common.config import Config

    loaded = load_config(trinity_experiment(), extra, backbone="trinity")
    translated = copy.deepcopy(to_trinity(loaded, tmp_path / "records").config)
    translated["cluster"] = assumed_cluster(translated)
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), translated))
    config.check_and_update()
    return loaded, config


@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
def test_loss_and_gradient_equal_trinitys_policy_loss(trinity_experiment, tmp_path, kl_coef):
    from tensordict import TensorDict
    from trinity.trainer.verl.losses import TrinityPolicyLoss

    algo = ["astuner.algorithm.clip_ratio_high=0.28", f"astuner.algorithm.kl_coef={kl_coef}"]
    loaded, config = _translated(trinity_experiment, tmp_path, algo)
    batch = cases.loss_batch()
    ours, ours_grad = cases.debug_loss(batch, loaded.astuner.algorithm)

    theirs_logp = batch.logp.clone().requires_grad_()
    fields, output = cases.model_inputs(batch, list(range(len(batch.resp_lens))), theirs_logp)
    data = TensorDict(fields, batch_size=[len(batch.resp_lens)])
    theirs, metrics = TrinityPolicyLoss(config.algorithm)(output, data)
    theirs.backward()
    assert ("actor/kl_loss" in metrics) == (kl_coef > 0)
    assert ours == pytest.approx(float(theirs.detach()), rel=1e-5, abs=1e-7)
    assert torch.allclose(ours_grad * batch.mask, theirs_logp.grad * batch.mask, atol=1e-7)


def _trinity_advantages(eps, config) -> dict[tuple[str, int], float]:
    """The adapter's experiences for ``eps`` through the advantage step the translated config names."""
    from trinity.algorithm import ADVANTAGE_FN, ALGORITHM_TYPE, KL_FN
    from trinity.buffer.operators.experience_operator import ensure_v1_operator
    from trinity.trainer.verl.utils import to_data_proto

    exps = []
    for e in eps:
        for exp in episode_experiences(e, e.repeat_index):
            exp.eid.batch = 5  # what Trinity's WorkflowRunner sets (eid.task only when the workflow left it empty)
            if exp.eid.task == "":
                exp.eid.task = "abcd".index(e.task_id)
            exps.append(exp)
    a = config.algorithm
    fn = ADVANTAGE_FN.get(a.advantage_fn)(**a.advantage_fn_args)
    if not ALGORITHM_TYPE.get(a.algorithm_type).compute_advantage_in_trainer:  # the explorer's pipeline
        import asyncio

        scored, _ = asyncio.run(ensure_v1_operator(fn).process(exps))
        advantages = {id(x): x.advantages for x in scored}
        rows = [(x, advantages.get(id(x))) for x in exps]
    else:  # the trainer, on its batch (KL penalty step first, as in its train_step)
        batch = to_data_proto(exps, 0, None, logging.getLogger(__name__))
        batch, _ = KL_FN.get(a.kl_penalty_fn)(**a.kl_penalty_fn_args).apply_kl_penalty_to_reward(batch)
        batch, _ = fn(batch)
        rows = [(x, batch.batch["advantages"][i, : len(x.action_mask)]) for i, x in enumerate(exps)]
    out = {}
    for exp, adv in rows:
        if exp.info.get("astuner_outside_group"):
            assert adv is None or not bool(exp.action_mask.any())  # a placeholder trains nothing
            continue
        out[(exp.info["astuner_episode_id"], exp.eid.step)] = float(adv[exp.action_mask][0])
    return out


@pytest.mark.parametrize(("estimator", "timelines"), cases.SETTINGS)
def test_group_advantages_with_failed_episodes_equal_trinitys(trinity_experiment, tmp_path, estimator, timelines):
    loaded, config = _translated(trinity_experiment, tmp_path, cases.overrides(estimator, timelines))
    eps = cases.episodes(timelines)
    ours = cases.debug_advantages(eps, loaded.astuner)
    theirs = _trinity_advantages(eps, config)
    assert set(theirs) == set(ours)  # the same samples are trained
    for key, value in ours.items():
        assert theirs[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_an_episode_outside_its_group_still_gives_trinity_one_experience():
    """Trinity's trainer reads exactly batch_size x repeat_times experiences a step: a left-out episode
    gives one untrained placeholder in a group of its own, so the count stays and no group changes."""
    from trinity.common.experience import Experience

    eps = cases.episodes(timelines=False)
    per_episode = [episode_experiences(e, e.repeat_index) for e in eps]
    assert [len(x) for x in per_episode] == [1] * len(eps)
    placeholders = [x for xs in per_episode for x in xs if x.info.get("astuner_outside_group")]
    assert [p.info["astuner_episode_id"] for p in placeholders] == ["a-r2", "b-r1", "b-r2", "b-r3"]
    for p in Experience.deserialize_many(Experience.serialize_many(placeholders)):  # as runners send them
        assert p.eid.task.startswith("astuner-outside-group/") and not bool(p.action_mask.any())
