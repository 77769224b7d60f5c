"""Attention over packed rows: the same values and gradients as SDPA with the row's mask, kept by checkpointing."""

from __future__ import annotations

import pytest
import torch

from astuner.backbone.debug import packed_attention
from astuner.backbone.debug.packed_attention import PackedLayout, use_packed_attention
from astuner.backbone.debug.shared_prefix import micro_batches, tokens
from tests.backbone.debug.test_shared_prefix import item

# (prefix, own lengths of the row's samples): several samples in two length buckets, a sample with no
# own tokens (its sequence is the prefix), a row of one sample (all prefix), and padding after each row
ROWS = [(7, [4, 3, 40, 0]), (5, [2]), (9, [])]


def _case(rows, heads=3, dim=16, dtype=torch.float32, seed=0):
    width = max(p + sum(s) for p, s in rows) + 2
    segment = torch.full((len(rows), width), -1)
    samples = []
    for r, (p, lens) in enumerate(rows):
        segment[r, :p], at, spans = 0, p, []
        for k, n in enumerate(lens, start=1):
            segment[r, at : at + n] = k
            spans.append((at, n))
            at += n
        samples.append(spans)
    q, kv = segment[:, :, None], segment[:, None, :]
    allowed = torch.ones(width, width, dtype=torch.bool).tril() & (q >= 0) & (kv >= 0) & ((kv == 0) | (kv == q))
    allowed |= torch.eye(width, dtype=torch.bool)
    gen = torch.Generator().manual_seed(seed)
    qkv = [torch.randn(len(rows), heads, width, dim, generator=gen).to(dtype).requires_grad_() for _ in range(3)]
    real = (segment >= 0)[:, None, :, None]
    grad = torch.randn(len(rows), heads, width, dim, generator=gen).to(dtype) * real
    layout = PackedLayout.of([p for p, _ in rows], samples)
    return qkv, allowed[:, None], real, grad, layout


def _reference(qkv, allowed, real, grad):
    q, k, v = (t.detach().double().requires_grad_() for t in qkv)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed) * real
    return out, torch.autograd.grad(out, (q, k, v), grad.double())


def test_values_and_gradients_equal_sdpa_with_the_row_mask():
    qkv, allowed, real, grad, layout = _case(ROWS)
    assert [len(c[0]) for c in layout.own_cols] == [32, 64]  # the two length buckets
    ref, ref_grads = _reference(qkv, allowed, real, grad)
    out = packed_attention.packed_attention(*qkv, layout, scale=16**-0.5)
    grads = torch.autograd.grad(out, qkv, grad)
    assert torch.allclose(out * real, ref.float(), atol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g, r.float(), atol=1e-5)


def test_bf16_stays_within_bf16_rounding():
    qkv, allowed, real, grad, layout = _case(ROWS, dtype=torch.bfloat16)
    ref, ref_grads = _reference(qkv, allowed, real, grad)
    out = packed_attention.packed_attention(*qkv, layout, scale=16**-0.5)
    grads = torch.autograd.grad(out, qkv, grad)
    assert out.dtype == torch.bfloat16 and all(g.dtype == torch.bfloat16 for g in grads)
    assert float((out.double() * real - ref).abs().max()) < 0.03
    for g, r in zip(grads, ref_grads, strict=True):
        assert float((g.double() - r).abs().max() / r.abs().max()) < 0.03


def test_selective_checkpointing_keeps_its_output_and_never_reruns_it(monkeypatch):
    """The trainer's checkpoint policy saves the op's output: the recompute pass calls no kernel."""
    from torch.utils.checkpoint import checkpoint

    from astuner.backbone.debug.trainer import _keep_attention_outputs

    calls = []
    flash = packed_attention._FLASH
    monkeypatch.setattr(packed_attention, "_FLASH", lambda *a, **k: calls.append(1) or flash(*a, **k))
    qkv, allowed, real, grad, layout = _case(ROWS)

    def layer(q, k, v):
        return packed_attention.packed_attention(q * 1.0, k, v, layout, scale=16**-0.5).sin()

    out = checkpoint(layer, *qkv, use_reentrant=False, context_fn=_keep_attention_outputs)
    forward_calls = len(calls)
    assert forward_calls == 5  # per row: the prefix, and the samples against it where there are any
    grads = torch.autograd.grad(out, qkv, grad)
    assert len(calls) == forward_calls
    plain = torch.autograd.grad(layer(*qkv), qkv, grad)
    for g, p in zip(grads, plain, strict=True):
        assert torch.equal(g, p)


def test_a_transformers_model_gives_each_packed_sample_its_own_hidden_states(tiny_model_dir):
    """Through transformers' AttentionInterface (grouped-query heads, rotary positions), one forward."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    use_packed_attention(model)
    items = [item([1, 2, 3, 4], [5, 6, 7]), item([1, 2, 3, 4], [8]), item([1, 2, 9], [10, 11]), item([3], [4])]
    mb = micro_batches(items, budget=4096)[0]
    with torch.no_grad():
        flat = model.model(**mb.packed_inputs(0, torch.device("cpu"))).last_hidden_state.flatten(0, 1)
        for i, it in enumerate(mb.items):
            seq = tokens(it.sample)
            alone = model.model(input_ids=torch.tensor([seq])).last_hidden_state[0]  # no layout: SDPA
            index = mb.flat_index(torch.arange(len(seq))[None].expand(len(mb.items), -1))[i]
            assert torch.allclose(flat[index], alone, atol=1e-5), i


@pytest.mark.parametrize(
    "name", ["_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention_for_cpu_backward"]
)
def test_contract_the_pinned_torch_has_the_cpu_flash_ops(name):
    """The trainer falls back to SDPA with the mask where these ATen ops are missing; on the pinned torch they
    are there, with the arguments this module passes."""
    assert packed_attention.available()
    schema = str(getattr(torch.ops.aten, name).default._schema)
    assert "Tensor query, Tensor key, Tensor value" in schema and "bool is_causal" in schema
    assert "float? scale=None" in schema and "Tensor logsumexp" in schema
