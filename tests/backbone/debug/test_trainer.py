"""The in-process policy update on a tiny random Llama: it learns, micro-batching is exact, LoRA exports."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from astuner.backbone.debug.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from astuner.backbone.debug.trainer import PolicyTrainer, TrainItem
from astuner.config.schema import AstunerConfig
from astuner.context.types import Sample


def config(**debug) -> AstunerConfig:
    cfg = AstunerConfig()
    cfg.optim = dataclasses.replace(cfg.optim, lr=1e-2)
    cfg.debug = dataclasses.replace(cfg.debug, bf16_autocast=False, **debug)
    return cfg


def sample(prompt, response, logprob=-2.0):
    return Sample(
        prompt_ids=prompt,
        response_ids=response,
        loss_mask=[1] * len(response),
        logprobs=[logprob] * len(response),
        call_indices=[0],
    )


ITEMS = [
    TrainItem(sample([1, 5, 6], [7, 8, 9]), 1.0),
    TrainItem(sample([1, 5, 6], [10, 11]), -1.0),
    TrainItem(sample([1, 2, 3, 4, 5, 6, 7], [12] * 20), 0.5),
]


def test_update_raises_the_logprob_of_positive_advantage_tokens(tiny_model_dir):
    trainer = PolicyTrainer(tiny_model_dir, config())
    before = trainer.sequence_logprobs([1, 5, 6, 7, 8, 9])[-3:]
    metrics = trainer.update(ITEMS)
    after = trainer.sequence_logprobs([1, 5, 6, 7, 8, 9])[-3:]
    assert metrics["train_tokens"] == 25 and torch.isfinite(torch.tensor(metrics["loss"]))
    assert sum(after) > sum(before)


@pytest.mark.parametrize("shared_prefix, small", [(False, 64), (True, 16)])
def test_micro_batching_does_not_change_the_update(tiny_model_dir, shared_prefix, small):
    one = PolicyTrainer(tiny_model_dir, config(micro_batch_tokens=4096, shared_prefix=shared_prefix))
    many = PolicyTrainer(tiny_model_dir, config(micro_batch_tokens=small, shared_prefix=shared_prefix))
    assert len(one.micro_batches(ITEMS)) == 1 and len(many.micro_batches(ITEMS)) > 1
    for t in (one, many):  # plain SGD: the weight change is the gradient itself (Adam would amplify noise)
        t.optimizer = torch.optim.SGD([p for p in t.model.parameters() if p.requires_grad], lr=0.1)
    one.update(ITEMS)
    many.update(ITEMS)
    for (name, a), (_, b) in zip(one.model.state_dict().items(), many.model.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


@pytest.mark.parametrize("checkpointing, kl_coef", [(False, 0.0), (True, 0.0), (True, 0.5)])
def test_shared_prefix_does_not_change_the_update(tiny_model_dir, checkpointing, kl_coef):
    def trainer(**debug):
        cfg = config(**debug)
        cfg.algorithm = dataclasses.replace(cfg.algorithm, kl_coef=kl_coef)
        return _sgd(PolicyTrainer(tiny_model_dir, cfg))

    padded = trainer(shared_prefix=False)
    shared = trainer(shared_prefix=True, gradient_checkpointing=checkpointing)
    items = [*ITEMS, TrainItem(sample([1, 5, 6], [7, 8]), 0.0)]  # zero advantage: counted, run only for the KL
    for _ in range(2):  # the second step's policy differs from the reference
        mp, ms = padded.update(items), shared.update(items)
    assert (ms["train_tokens"], ms["micro_batches"]) == (mp["train_tokens"], 1)
    assert ms["loss"] == pytest.approx(mp["loss"], rel=1e-5)
    assert ms["kl_ref"] == pytest.approx(mp["kl_ref"], rel=1e-4, abs=1e-9) and (ms["kl_ref"] > 0) == (kl_coef > 0)
    for (name, a), (_, b) in zip(padded.model.state_dict().items(), shared.model.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_lora_exports_full_weights_under_base_names(tiny_model_dir):
    trainer = PolicyTrainer(tiny_model_dir, config(lora_rank=4))
    base = PolicyTrainer(tiny_model_dir, config())
    trainer.update(ITEMS)
    exported = trainer.engine_state_dict()
    assert set(exported) == set(base.model.state_dict())
    assert not any("lora" in k for k in exported)
    changed = [k for k in exported if not torch.equal(exported[k], base.model.state_dict()[k])]
    assert changed and all("proj" in k for k in changed)  # LoRA touched the linear layers only


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_the_streamed_export_is_the_engine_state_dict_in_bf16(tiny_model_dir, tmp_path, lora_rank):
    from safetensors.torch import load_file

    from astuner.engine.weight_sync import VllmWeightSync

    trainer = PolicyTrainer(tiny_model_dir, config(lora_rank=lora_rank))
    trainer.update(ITEMS)
    sync = VllmWeightSync("http://127.0.0.1:1", tmp_path)
    try:
        sync.export(trainer.engine_weights())
    finally:
        sync.close()
    written, whole = load_file(tmp_path / "model.safetensors"), trainer.engine_state_dict()
    assert set(written) == set(whole) and not any("lora" in k for k in written)
    assert [k for k, v in whole.items() if not torch.equal(written[k], v.to(torch.bfloat16))] == []


def test_lora_export_never_touches_the_frozen_base(tiny_model_dir, tmp_path):
    """Each weight sync exports merged weights; a resumed run (fresh base) must export the same ones.

    peft's in-place merge/unmerge left ``W + d - d != W`` behind after every sync, so a run resumed
    from a checkpoint sampled differently from one that never stopped (bench/reliability.py).
    """
    trainer = PolicyTrainer(tiny_model_dir, config(lora_rank=4))
    base = {k: v.clone() for k, v in trainer.model.state_dict().items() if "lora_" not in k}
    for _ in range(3):  # three steps, each followed by a sync (the probe logprobs too)
        trainer.update(ITEMS)
        trainer.engine_state_dict()
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in base.items())
    path = save_checkpoint(tmp_path, trainer, TrainState(step=3, epoch=0, batch_index=3))
    restored = PolicyTrainer(tiny_model_dir, config(lora_rank=4))
    load_checkpoint(path, restored)
    mine, theirs = trainer.engine_state_dict(), restored.engine_state_dict()
    assert [k for k in mine if not torch.equal(mine[k], theirs[k])] == []


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_checkpoint_round_trip_is_exact(tiny_model_dir, tmp_path, lora_rank):
    trainer = PolicyTrainer(tiny_model_dir, config(lora_rank=lora_rank))
    trainer.update(ITEMS)
    path = save_checkpoint(tmp_path, trainer, TrainState(step=3, epoch=1, batch_index=2))
    (tmp_path / ".step_9.tmp-123").mkdir()  # an interrupted write is never picked up
    assert latest_checkpoint(tmp_path) == path
    expected = torch.rand(3)
    restored = PolicyTrainer(tiny_model_dir, config(lora_rank=lora_rank))
    state = load_checkpoint(path, restored)
    assert state == TrainState(step=3, epoch=1, batch_index=2)
    assert restored.weights_hash() == trainer.weights_hash()
    assert torch.equal(torch.rand(3), expected)  # RNG state restored to the moment of saving
    trainer.update(ITEMS)
    restored.update(ITEMS)  # optimizer moments restored too: the next step is identical
    assert restored.weights_hash() == trainer.weights_hash()


def test_an_offloaded_optimizer_state_leaves_memory_and_comes_back_bit_for_bit(tiny_model_dir, tmp_path):
    kept = PolicyTrainer(tiny_model_dir, config())
    offloaded = PolicyTrainer(tiny_model_dir, config())
    for t in (kept, offloaded):
        t.update(ITEMS)
    moments = sum(v.numel() for st in kept.optimizer.state.values() for v in st.values() if v.dim() > 0)
    assert moments == 2 * sum(p.numel() for p in kept.model.parameters())  # AdamW's two moments per weight
    assert offloaded.offload_optimizer(tmp_path / "opt.pt") >= 0
    assert len(offloaded.optimizer.state) == 0 and (tmp_path / "opt.pt").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["opt.pt"]  # no temporary file left
    # a checkpoint taken while the state is in its file holds the same state as one taken from memory
    ckpt = save_checkpoint(tmp_path / "ckpt", offloaded, TrainState(step=1))
    assert len(offloaded.optimizer.state) == 0
    for t in (kept, offloaded):
        t.update(ITEMS)  # the offloaded one reads its state back first
    assert offloaded.offloaded is None and offloaded.weights_hash() == kept.weights_hash()
    restored = PolicyTrainer(tiny_model_dir, config())
    load_checkpoint(ckpt, restored)
    restored.update(ITEMS)
    assert restored.weights_hash() == kept.weights_hash()


def test_pruning_keeps_the_newest_checkpoints_and_only_touches_its_own(tiny_model_dir, tmp_path):
    trainer = PolicyTrainer(tiny_model_dir, config())
    for step in (1, 2, 10):  # 10 after 2: steps compare as numbers, not names
        save_checkpoint(tmp_path, trainer, TrainState(step=step))
    assert prune_checkpoints(tmp_path, 0) == []  # 0 keeps all
    (tmp_path / ".step_3.tmp-1").mkdir()  # a killed process's write
    (tmp_path / ".step_1.delete-1").mkdir()  # a killed process's delete
    (tmp_path / "step_7").mkdir()  # no state.json: not a checkpoint of ours
    (tmp_path / "best").mkdir()  # the user's own
    deleted = prune_checkpoints(tmp_path, 2)
    assert deleted == [tmp_path / "step_1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "step_10", "step_2", "step_7"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step_10"
    assert prune_checkpoints(tmp_path, 1) == [tmp_path / "step_2"]
    assert load_checkpoint(tmp_path / "step_10", PolicyTrainer(tiny_model_dir, config())).step == 10


def _sgd(trainer, lr=0.1):
    """Plain SGD without clipping: the weight change is the gradient itself, so it can be compared."""
    trainer.optimizer = torch.optim.SGD([p for p in trainer.model.parameters() if p.requires_grad], lr=lr)
    trainer.cfg.optim = dataclasses.replace(trainer.cfg.optim, grad_clip=0.0)
    return trainer


def _delta(trainer, before):
    return torch.cat([(p - before[k]).flatten() for k, p in trainer.model.state_dict().items()])


def test_zero_advantage_samples_count_in_the_token_mean(tiny_model_dir):
    """verl and Trinity keep them in the batch: the other samples' gradient is divided by all tokens."""
    trained, idle = ITEMS[0], TrainItem(sample([1, 2], [3] * 9), 0.0)
    alone, mixed = _sgd(PolicyTrainer(tiny_model_dir, config())), _sgd(PolicyTrainer(tiny_model_dir, config()))
    before = {k: v.clone() for k, v in alone.model.state_dict().items()}
    alone.update([trained])
    metrics = mixed.update([trained, idle])
    assert metrics["train_tokens"] == 12 and metrics["micro_batches"] == 1  # the idle sample was not run
    assert torch.allclose(_delta(mixed, before), _delta(alone, before) * 3 / 12, atol=1e-7)


def test_one_optimizer_step_per_batch_size_times_repeats(tiny_model_dir):
    cfg = config()
    cfg.data = dataclasses.replace(cfg.data, train_batch_size=1)
    cfg.rollout = dataclasses.replace(cfg.rollout, num_repeat=2)
    split, whole = PolicyTrainer(tiny_model_dir, cfg), PolicyTrainer(tiny_model_dir, cfg)
    assert [len(c) for c in whole.mini_batches(ITEMS)] == [2, 1]
    assert whole.update(ITEMS)["optimizer_steps"] == 2
    split.update(ITEMS[:2])
    split.update(ITEMS[2:])
    assert split.weights_hash() == whole.weights_hash()


def test_a_batch_without_signal_still_steps(tiny_model_dir):
    """Zero gradients, but Adam's moments move the weights, as on verl and Trinity."""
    trainer = PolicyTrainer(tiny_model_dir, config())
    trainer.update(ITEMS)
    before = trainer.weights_hash()
    metrics = trainer.update([TrainItem(ITEMS[0].sample, 0.0)])
    assert (metrics["optimizer_steps"], metrics["micro_batches"], metrics["grad_norm"]) == (1, 0, 0.0)
    assert metrics["forward_tokens"] == 0 and "ratio_mean" not in metrics  # no token, no ratio (not 0)
    assert trainer.weights_hash() != before


def test_a_mini_batch_without_signal_leaves_the_per_token_statistics_as_they_are(tiny_model_dir):
    """It forwarded no token, so it has no ratio: counted as 0 it pulled ratio_mean towards 0."""
    cfg = config()
    cfg.data = dataclasses.replace(cfg.data, train_batch_size=1)
    cfg.rollout = dataclasses.replace(cfg.rollout, num_repeat=2)
    idle = [TrainItem(ITEMS[2].sample, 0.0)] * 2
    alone = PolicyTrainer(tiny_model_dir, cfg).update(ITEMS[:2])
    mixed = PolicyTrainer(tiny_model_dir, cfg).update(ITEMS[:2] + idle)
    assert mixed["optimizer_steps"] == 2 and alone["ratio_mean"] > 0
    for k in ("ratio_mean", "approx_kl", "clipfrac"):
        assert mixed[k] == pytest.approx(alone[k])


@pytest.mark.parametrize("shared_prefix", [False, True])
def test_logprobs_are_taken_at_the_sampling_temperature(tiny_model_dir, shared_prefix):
    cfg = config(shared_prefix=shared_prefix)
    cfg.rollout = dataclasses.replace(cfg.rollout, temperature=0.5)
    trainer = PolicyTrainer(tiny_model_dir, cfg)
    mb = trainer.micro_batches([ITEMS[0]])[0]
    with torch.no_grad():
        got = trainer._logprobs(trainer.model, mb, trainer._batch(mb.items))[0, :3]
        logits = trainer.model(input_ids=torch.tensor([[1, 5, 6, 7, 8, 9]])).logits[0, 2:5].float()
    want = torch.log_softmax(logits / 0.5, -1).gather(1, torch.tensor([[7], [8], [9]])).squeeze(-1)
    assert torch.allclose(got, want, atol=1e-5)
