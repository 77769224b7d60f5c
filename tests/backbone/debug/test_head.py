"""The chunked LM-head logprobs against autograd's own log-softmax of the full logits."""

from __future__ import annotations

import pytest
import torch

from astuner.backbone.debug.head import CHUNK, head_logprobs


def _reference(hidden, head, targets, temperature, bf16):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = head(hidden)
    return torch.log_softmax(logits.float() / temperature, dim=-1).gather(1, targets[:, None]).squeeze(1)


def _run(fn, hidden, head, targets, temperature, bf16, grad_out):
    h = hidden.clone().requires_grad_()
    head.zero_grad()
    out = fn(h, head, targets, temperature, bf16)
    out.backward(grad_out)
    return out.detach(), h.grad, head.weight.grad.clone()


@pytest.mark.parametrize("bf16", [False, True])
def test_values_and_gradients_match_the_full_log_softmax(bf16):
    torch.manual_seed(0)
    n, dim, vocab = 2 * CHUNK + 7, 64, 1000  # three chunks, the last one short
    head = torch.nn.Linear(dim, vocab, bias=False)
    hidden, targets = torch.randn(n, dim), torch.randint(0, vocab, (n,))
    grad_out = torch.randn(n)
    want = _run(_reference, hidden, head, targets, 0.7, bf16, grad_out)
    got = _run(head_logprobs, hidden, head, targets, 0.7, bf16, grad_out)
    tol = 2e-2 if bf16 else 1e-5  # bf16: the weight gradient is rounded per chunk instead of once
    for name, a, b in zip(("logprobs", "hidden grad", "weight grad"), got, want, strict=True):
        assert torch.allclose(a, b, rtol=tol, atol=tol * b.abs().max().item()), name


def test_a_head_with_a_bias_is_refused():
    with pytest.raises(ValueError, match="bias-free LM head"):
        head_logprobs(torch.randn(2, 4), torch.nn.Linear(4, 10), torch.tensor([1, 2]), 1.0, False)


def _backward_matmuls(head, hidden, targets, grad_out):
    """The backward's result and the number of matmuls it ran (torch's profiler)."""
    h = hidden.clone().requires_grad_()
    out = head_logprobs(h, head, targets, 0.7, True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out.backward(grad_out)
    return h.grad, sum(e.count for e in prof.key_averages() if e.key == "aten::mm")


def test_a_frozen_head_skips_the_weight_gradient_and_keeps_the_hidden_one():
    """LoRA freezes the head: its backward runs two matmuls per chunk instead of three."""
    torch.manual_seed(0)
    head = torch.nn.Linear(64, 1000, bias=False)
    hidden, targets, grad_out = torch.randn(CHUNK + 3, 64), torch.randint(0, 1000, (CHUNK + 3,)), torch.randn(CHUNK + 3)
    trained_grad, trained_mm = _backward_matmuls(head, hidden, targets, grad_out)
    head.weight.grad = None
    head.weight.requires_grad_(False)
    frozen_grad, frozen_mm = _backward_matmuls(head, hidden, targets, grad_out)
    assert (trained_mm, frozen_mm) == (6, 4)  # two chunks
    assert head.weight.grad is None
    assert torch.equal(frozen_grad, trained_grad)
