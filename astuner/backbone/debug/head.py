"""Logprobs of chosen tokens through the LM head, a few rows at a time, never holding all the logits.

A micro-batch of the main job trains ~1,700 tokens; their logits over SmolLM2's 49,152-token vocabulary
are 330 MB in fp32, and autograd kept that several times over (bf16 logits, the fp32 copy, the
temperature-scaled copy, log-softmax's output) until backward. Here the forward keeps only each
row's log-sum-exp, and the backward recomputes the logits chunk by chunk; the weight is cast to
bf16 once per pass instead of once per chunk. The arithmetic is the one autograd does for
``log_softmax(lm_head(h).float() / T).gather(targets)`` under bf16 autocast (bf16 matmuls, fp32
softmax), so the values and gradients agree to rounding (``tests/backbone/debug/test_head.py``).
"""

from __future__ import annotations

from typing import Any

import torch

CHUNK = 256  # rows of logits at once: one [256, 49152] fp32 buffer is 48 MiB


class _HeadLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        temperature: float,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        w = weight.detach().to(dtype)
        out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(out)
        for i in range(0, len(targets), CHUNK):
            z = _scaled_logits(hidden[i : i + CHUNK], w, temperature)
            lse[i : i + CHUNK] = torch.logsumexp(z, dim=-1)
            out[i : i + CHUNK] = z.gather(1, targets[i : i + CHUNK, None]).squeeze(1) - lse[i : i + CHUNK]
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.temperature, ctx.dtype = temperature, dtype
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, targets, lse = ctx.saved_tensors
        w = weight.detach().to(ctx.dtype)
        grad_hidden = torch.empty_like(hidden)
        # A frozen head (LoRA leaves it out) needs no weight gradient: one of the chunk's three matmuls.
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        for i in range(0, len(targets), CHUNK):
            h = hidden[i : i + CHUNK].to(ctx.dtype)
            g = grad_out[i : i + CHUNK, None]
            # d logp(target) / d z = onehot(target) - softmax(z); z = logits / T
            grad = _scaled_logits(h, w, ctx.temperature).sub_(lse[i : i + CHUNK, None]).exp_().mul_(-g)
            grad.scatter_add_(1, targets[i : i + CHUNK, None], g).div_(ctx.temperature)
            grad_logits = grad.to(ctx.dtype)
            grad_hidden[i : i + CHUNK] = (grad_logits @ w).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight.add_(grad_logits.T @ h)  # in place, in the weight's dtype: no fp32 copy of the chunk
        return grad_hidden, grad_weight, None, None, None


def _scaled_logits(hidden: torch.Tensor, weight: torch.Tensor, temperature: float) -> torch.Tensor:
    return (hidden.to(weight.dtype) @ weight.T).float().div_(temperature)


def head_logprobs(
    hidden: torch.Tensor, lm_head: torch.nn.Linear, targets: torch.Tensor, temperature: float, bf16: bool
) -> torch.Tensor:
    """``log softmax(lm_head(hidden) / temperature)[targets]`` per row, differentiable.

    Args:
        hidden: [N, H] final hidden states.
        lm_head: the model's output layer (a bias-free linear layer, as in Llama, Qwen, Mistral).
        targets: [N] token ids.
        temperature: the sampling temperature the logprobs are taken at.
        bf16: matmuls in bfloat16 (as under ``debug.bf16_autocast``), else in the weights' dtype.

    Raises:
        ValueError: the output layer has a bias.
    """
    if lm_head.bias is not None:
        raise ValueError("debug.shared_prefix needs a bias-free LM head; set astuner.debug.shared_prefix=false")
    dtype = torch.bfloat16 if bf16 else lm_head.weight.dtype
    return _HeadLogprobs.apply(hidden, lm_head.weight, targets, temperature, dtype)
