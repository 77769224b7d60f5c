"""Packed rows with shared prefixes: the packing, and the same loss and gradients as padded rows."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from astuner.backbone.debug.shared_prefix import (
    WIDTH_MULTIPLE,
    MicroBatch,
    Row,
    common_prefix,
    micro_batches,
    pack_rows,
    tokens,
)
from astuner.backbone.debug.trainer import PolicyTrainer, TrainItem
from astuner.config.schema import AstunerConfig
from astuner.context.types import Sample


def item(prompt, response, advantage=1.0, mask=None):
    mask = mask or [1] * len(response)
    logprobs = [-1.5 if m else 0.0 for m in mask]
    return TrainItem(Sample(list(prompt), list(response), mask, logprobs, call_indices=[0]), advantage)


def test_common_prefix():
    assert common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix([[5, 6], [5, 6]]) == 2
    assert common_prefix([[1], [2]]) == 0


def test_a_group_shares_one_row_and_other_tasks_get_their_own():
    system = list(range(100, 400))  # what every task shares: the agent's system prompt
    group_a = [item(system + [1] * 40, [7, k] * 30) for k in range(8)]
    group_b = [item(system + [2] * 40, [8, k] * 30) for k in range(8)]
    rows = pack_rows(group_b + group_a, budget=4096)
    assert [(len(r.items), r.prefix) for r in rows] == [(8, 341), (8, 341)]
    assert {id(i) for i in rows[0].items} == {id(i) for i in group_a}
    assert rows[0].length == 341 + 8 * 59


def test_rows_and_micro_batches_keep_to_the_budget():
    prompt = list(range(100, 300))
    group = [item(prompt, [k] * 100) for k in range(8)]
    rows = pack_rows(group, budget=600)
    assert [len(r.items) for r in rows] == [4, 4] and all(r.length <= 600 for r in rows)
    lone = item(list(range(900)), [1])  # longer than the budget: alone, never dropped
    assert [len(mb.rows) for mb in micro_batches([lone, *group], budget=600)] == [1, 1, 1]
    assert len(micro_batches(group, budget=1200)) == 1  # two rows of 600 stacked


def test_packed_positions_map_back_to_each_sample():
    items = [item([1, 2, 3], [4, 5]), item([1, 2, 3], [6]), item([9, 9], [9, 9, 9])]
    mb = MicroBatch((Row.of(items[:2]), Row.of(items[2:])))
    inputs = mb.inputs(pad_id=0, device=torch.device("cpu"), dtype=torch.float32)
    assert mb.width == WIDTH_MULTIPLE == inputs["input_ids"].shape[1]  # 6 tokens, padded to a fixed multiple
    pad = [0] * (WIDTH_MULTIPLE - 6)
    assert inputs["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, *pad], [9, 9, 9, 9, 9, 0, *pad]]
    assert inputs["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3, *pad], [0, 1, 2, 3, 4, 0, *pad]]
    allowed = (inputs["attention_mask"][:, 0] == 0).int().tolist()
    assert allowed[0][5][:6] == [1, 1, 1, 0, 0, 1]  # the second sample's token sees the prefix and itself only
    assert allowed[1][5] == [0, 0, 0, 0, 0, 1, *pad]  # padding sees only itself
    positions = torch.tensor([[2, 3], [2, 0], [1, 2]])  # each item's positions in its own sequence
    assert mb.flat_index(positions).tolist() == [[2, 3], [2, 0], [WIDTH_MULTIPLE + 1, WIDTH_MULTIPLE + 2]]


def test_packed_rows_give_each_sample_its_own_hidden_states(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    items = [item([1, 2, 3, 4], [5, 6, 7]), item([1, 2, 3, 4], [8]), item([1, 2, 9], [10, 11])]
    mb = micro_batches(items, budget=4096)[0]
    with torch.no_grad():
        flat = model.model(**mb.inputs(0, torch.device("cpu"), torch.float32)).last_hidden_state.flatten(0, 1)
        for i, it in enumerate(mb.items):
            seq = tokens(it.sample)
            alone = model.model(input_ids=torch.tensor([seq])).last_hidden_state[0]
            index = mb.flat_index(torch.arange(len(seq))[None].expand(len(mb.items), -1))[i]
            assert torch.allclose(flat[index], alone, atol=1e-5), i


def _group(tokenizer):
    """A GRPO group as the main job makes it: one prompt, different replies (one with a tool result)."""
    prompt = tokenizer.apply_chat_template(
        [
            {"role": "system", "content": "You are a math agent. Use the python tool when it helps."},
            {"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"},
        ],
        add_generation_prompt=True,
        return_dict=False,
    )
    replies = ["He has \\boxed{7} apples.", "3 + 4 = 7, so 7.", "I think 12.", "Let me compute: 3+4 is 7."]
    out = []
    for k, text in enumerate(replies):
        response = tokenizer(text, add_special_tokens=False)["input_ids"]
        mask = [1] * len(response)
        if k == 3:  # a tool result between two sampled turns: loss mask 0
            tool = tokenizer(" [result: 7] ", add_special_tokens=False)["input_ids"]
            response, mask = response + tool + response[:3], mask + [0] * len(tool) + [1] * 3
        out.append(item(prompt, response, advantage=1.0 if k % 2 else -0.7, mask=mask))
    other = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 5?"}], add_generation_prompt=True, return_dict=False
    )
    out.append(item(other, tokenizer("7", add_special_tokens=False)["input_ids"], advantage=0.5))
    return out


def _logprobs_and_grads(model_dir, items, **debug):
    """Each item's trained-token logprobs (in ``items`` order) and the gradient of an advantage-weighted sum."""
    cfg = AstunerConfig()
    cfg = dataclasses.replace(cfg, debug=dataclasses.replace(cfg.debug, **debug))
    trainer = PolicyTrainer(model_dir, cfg)
    logprobs = {}
    for mb in trainer.micro_batches(items):
        b = trainer._batch(mb.items)
        logp = trainer._logprobs(trainer.model, mb, b)
        (logp * b["mask"] * b["adv"][:, None]).sum().backward()
        for row, it in enumerate(mb.items):
            logprobs[id(it)] = logp[row][b["mask"][row] > 0].detach()
    grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
    return torch.cat([logprobs[id(it)] for it in items]), grads


@pytest.mark.parametrize("checkpointing", [False, True])
def test_shared_prefix_gives_the_padded_logprobs_and_gradients_in_fp32(smollm2_dir, smollm2_tokenizer, checkpointing):
    """The proof of "the same learning": the embedded model's real weights, fp32, both paths.

    Measured: gradients differ by 4.6e-6 (relative), as much as the padded path differs from itself
    when its micro-batches change; logprobs by ~1e-6.
    """
    items = _group(smollm2_tokenizer)
    padded = _logprobs_and_grads(smollm2_dir, items, shared_prefix=False, bf16_autocast=False)
    shared = _logprobs_and_grads(
        smollm2_dir, items, shared_prefix=True, bf16_autocast=False, gradient_checkpointing=checkpointing
    )
    assert torch.allclose(shared[0], padded[0], atol=1e-4)
    assert float((shared[1] - padded[1]).norm() / padded[1].norm()) < 1e-4


def test_shared_prefix_stays_within_bf16_rounding_of_the_padded_path(smollm2_dir, smollm2_tokenizer):
    """Under bf16 autocast the numbers depend on batch shapes. Measured on this group: the padded path
    against itself with other micro-batches: logprobs 0.057 apart on average, gradient cosine 0.9985;
    shared prefix against padded: 0.067 and 0.9994."""
    items = _group(smollm2_tokenizer)
    padded = _logprobs_and_grads(smollm2_dir, items, shared_prefix=False)
    shared = _logprobs_and_grads(smollm2_dir, items, shared_prefix=True, gradient_checkpointing=True)
    assert float((shared[0] - padded[0]).abs().mean()) < 0.12
    assert torch.nn.functional.cosine_similarity(shared[1].double(), padded[1].double(), dim=0) > 0.995


def test_packed_attention_keeps_a_group_of_long_replies_in_one_row():
    """Under the row's mask every pair of a long row costs, so a group of long replies is split; packed
    attention computes each reply's own pairs only, and the group keeps one copy of its prompt."""
    group = [item(list(range(100, 390)), [k] * 400) for k in range(5)]
    assert [len(r.items) for r in pack_rows(group, budget=4096)] == [2, 2, 1]
    assert [len(r.items) for r in pack_rows(group, budget=4096, packed=True)] == [5]
