"""One step's episodes and one loss batch, shared by the parity tests against verl and Trinity.

The episodes hold every case of the group rules (``astuner/algo/semantics.py``): failed and
timed-out episodes, an ok one whose samples were all dropped, a lone survivor, a zero-signal group,
a "mad" episode and (``timelines=True``) a multi-timeline episode. ``debug_advantages`` is what the
debug backbone trains with: ``DebugRun._train_items`` exactly as the run applies it.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import torch

from astuner.backbone.debug.run import DebugRun
from astuner.config.schema import AstunerConfig
from astuner.context.types import Sample
from astuner.rollout.runner import Episode


def _sample(seed: int, prompt_len: int, mask: list[int]) -> Sample:
    """A sample whose response ends with a sampled token (as merged samples do), masked 0 elsewhere in between."""
    g = torch.Generator().manual_seed(seed)
    logprobs = [(-torch.rand(1, generator=g).item() - 0.05) if m else 0.0 for m in mask]
    return Sample(list(range(1, prompt_len + 1)), [100 + seed + i for i in range(len(mask))], mask, logprobs, [0])


def episodes(timelines: bool) -> list[Episode]:
    """12 episodes of 4 tasks (num_repeat 4); ``timelines`` gives one episode two samples."""

    def ok(task: str, r: int, reward: float, samples: list[Sample], **kw) -> Episode:
        return Episode(f"{task}-r{r}", task, r, "ok", reward=reward, samples=samples, **kw)

    second = [_sample(90, 4, [1, 0, 0, 1, 1])] if timelines else []
    return [
        # a: three members (a failure left out), one with two timelines
        ok("a", 0, 1.0, [_sample(1, 3, [1, 1, 1, 1])]),
        ok("a", 1, 0.0, [_sample(2, 5, [1, 1])]),
        Episode("a-r2", "a", 2, "failed", error="Traceback ...\nValueError: boom"),
        ok("a", 3, 0.0, [_sample(3, 2, [1, 0, 1, 1, 1, 1]), *second]),
        # b: a lone survivor (timeout, failure, and an ok episode without samples are no members)
        ok("b", 0, 1.0, [_sample(4, 4, [1, 1, 1])]),
        Episode("b-r1", "b", 1, "timeout"),
        Episode("b-r2", "b", 2, "failed", error="boom"),
        ok("b", 3, 0.0, []),
        # c: no signal (all 0.5); d: a mad episode (reward forced to 0) among successes
        ok("c", 0, 0.5, [_sample(5, 3, [1, 1])]),
        ok("c", 1, 0.5, [_sample(6, 3, [1, 1, 1, 1, 1])]),
        ok("d", 0, 1.0, [_sample(7, 6, [1, 1, 1])]),
        ok("d", 1, 0.0, [_sample(8, 2, [1, 1, 0, 1])], madness=["nonsense"]),
        ok("d", 2, 1.0, [_sample(9, 3, [1])]),
    ]


def debug_advantages(eps: list[Episode], cfg: AstunerConfig) -> dict[tuple[str, int], float]:
    """(episode id, sample index) -> the advantage the debug backbone trains that sample with."""
    items = DebugRun._train_items(SimpleNamespace(cfg=cfg), eps, {})  # type: ignore[arg-type]
    where = {id(s): (e.episode_id, i) for e in eps for i, s in enumerate(e.samples)}
    return {where[id(item.sample)]: item.advantage for item in items}


# (astuner overrides, timelines): what every backbone computes alike; multi-timeline episodes take GRPO
# with the std division on Trinity (its step-wise GRPO), and no RLOO on verl (config errors otherwise).
SETTINGS = [
    (["astuner.algorithm.adv_estimator=grpo"], False),
    (["astuner.algorithm.adv_estimator=grpo", "astuner.algorithm.norm_adv_by_std=false"], False),
    (["astuner.algorithm.adv_estimator=rloo"], False),
    (["astuner.algorithm.adv_estimator=reinforce_plus_plus"], False),
    (["astuner.algorithm.adv_estimator=grpo"], True),
]


def overrides(estimator_keys: list[str], timelines: bool) -> list[str]:
    keep = 2 if timelines else 1
    return [*estimator_keys, "astuner.rollout.num_repeat=4", f"astuner.rollout.multi_turn.max_sample_per_task={keep}"]


@dataclasses.dataclass
class LossBatch:
    """Padded [B, T] tensors of one mini-batch (one micro-batch), response tokens only."""

    prompt_lens: list[int]
    resp_lens: list[int]
    logp: torch.Tensor
    old: torch.Tensor
    ref: torch.Tensor
    adv: torch.Tensor  # [B]
    mask: torch.Tensor

    def rows(self, name: str) -> list[torch.Tensor]:
        t = getattr(self, name)
        return [t[i, :n] for i, n in enumerate(self.resp_lens)]


def loss_batch() -> LossBatch:
    """Varying lengths, masked gaps, ratios inside and outside both clips (incl. dual clip), a
    zero-advantage row, and a reference far enough for the KL clamp to matter on one token."""
    g = torch.Generator().manual_seed(7)
    prompt_lens, resp_lens = [3, 5, 2, 4, 1], [6, 3, 8, 5, 4]
    b, t = len(resp_lens), max(resp_lens)
    mask = torch.zeros(b, t)
    for i, n in enumerate(resp_lens):
        mask[i, :n] = 1
    mask[0, 2] = mask[2, 4] = mask[2, 5] = 0  # inserted context inside a response
    logp = -torch.rand(b, t, generator=g) * 2 - 0.05
    old = logp + torch.randn(b, t, generator=g) * 0.3
    old[1] = logp[1] - 1.6  # ratios ~5: above clip_ratio_c for this negative-advantage row
    ref = logp + torch.randn(b, t, generator=g) * 0.5
    ref[3, 0] = logp[3, 0] + 12.0  # exp(12) - 13 > 10: the k3 clamp
    adv = torch.tensor([0.8, -1.3, 0.0, -0.4, 1.7])
    pad = 1 - torch.arange(t).expand(b, t).ge(torch.tensor(resp_lens).unsqueeze(1)).float()
    return LossBatch(prompt_lens, resp_lens, logp * pad, old * pad, ref * pad, adv, mask)


def debug_loss(batch: LossBatch, algorithm) -> tuple[float, torch.Tensor]:
    """The debug trainer's loss on ``batch`` (one mini-batch) and its gradient with respect to ``logp``."""
    from astuner.algo.policy_loss import policy_loss_sum

    logp = batch.logp.clone().requires_grad_()
    loss, _ = policy_loss_sum(logp, batch.old, batch.adv, batch.mask, algorithm, batch.ref)
    mean = loss / batch.mask.sum()
    mean.backward()
    return float(mean.detach()), logp.grad


def nested(rows: list[torch.Tensor]) -> torch.Tensor:
    return torch.nested.as_nested_tensor([r.contiguous() for r in rows], layout=torch.jagged)


def model_inputs(batch: LossBatch, rows: list[int], logp: torch.Tensor) -> tuple[dict, dict]:
    """``rows`` as the verl-engine micro-batch both upstream losses read (jagged tensors), and the model's
    output over whole sequences, where verl's ``no_padding_2_padding`` reads response token j at
    ``prompt_len - 1 + j`` (``logp`` may require grad: the gradient flows back to it)."""
    lens = [batch.resp_lens[i] for i in rows]
    data = {
        "prompts": nested([torch.arange(batch.prompt_lens[i]) + 1 for i in rows]),
        "responses": nested([torch.arange(n) + 10 for n in lens]),
        "response_mask": nested([batch.rows("mask")[i] for i in rows]),
        "old_log_probs": nested([batch.rows("old")[i] for i in rows]),
        "advantages": nested([torch.full((n,), float(batch.adv[i])) for i, n in zip(rows, lens, strict=True)]),
        "ref_log_prob": nested([batch.rows("ref")[i] for i in rows]),
    }
    full = []
    for i, n in zip(rows, lens, strict=True):
        at = torch.arange(n) + batch.prompt_lens[i] - 1
        full.append(torch.zeros(batch.prompt_lens[i] + n).index_put((at,), logp[i, :n]))
    return data, {"log_probs": nested(full)}
