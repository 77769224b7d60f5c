"""Padding helpers with flash-attn's ``bert_padding`` signatures, in plain PyTorch (see ``__init__``).

A batch ``(batch, seqlen, ...)`` with an attention mask becomes one packed row of its real tokens
(``unpad_input``) and back (``pad_input``); ``indices`` are the kept positions in the flattened batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # re-exported, as flash-attn does (verl imports it from here); einops is on the GPU machine's image
    from einops import rearrange
except ImportError:  # pragma: no cover - only where einops is missing
    rearrange = None

__all__ = ["index_first_axis", "pad_input", "rearrange", "unpad_input"]


def index_first_axis(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``tensor[indices]`` along the first axis (autograd gives the scatter back)."""
    return tensor[indices]


def unpad_input(hidden_states: torch.Tensor, attention_mask: torch.Tensor, unused_mask: torch.Tensor | None = None):
    """The real tokens of ``hidden_states`` (``(batch, seqlen, ...)``), packed.

    Returns ``(packed (nnz, ...), indices (nnz,), cu_seqlens (batch + 1,) int32, max_seqlen int,
    used_seqlens (batch,) int32)``; ``unused_mask`` marks tokens kept but not attended to.
    """
    masks = attention_mask + unused_mask if unused_mask is not None else attention_mask
    seqlens = masks.sum(dim=-1, dtype=torch.int32)
    used = attention_mask.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(masks.flatten(), as_tuple=False).flatten()
    cu_seqlens = F.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
    packed = index_first_axis(hidden_states.reshape(-1, *hidden_states.shape[2:]), indices)
    return packed, indices, cu_seqlens, int(seqlens.max().item()), used


def pad_input(hidden_states: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """The packed ``hidden_states`` (``(nnz, ...)``) back at ``indices`` of a zero ``(batch, seqlen, ...)``."""
    out = torch.zeros(
        (batch * seqlen, *hidden_states.shape[1:]), device=hidden_states.device, dtype=hidden_states.dtype
    )
    out[indices] = hidden_states
    return out.reshape(batch, seqlen, *hidden_states.shape[1:])
