"""The GPU kit's plain-PyTorch ``flash_attn.bert_padding`` (scripts/gpu/flash_attn_padding) equals the real one.

The reference is transformers' copy of flash-attn's helpers (``modeling_flash_attention_utils``),
which transformers uses when flash-attn is absent; flash-attn itself does not install here.
Loaded under another name, so no ``flash_attn`` module appears in this test session.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import modeling_flash_attention_utils as reference

from tests.conftest import load_file_module

PATH = Path(__file__).resolve().parents[3] / "scripts/gpu/flash_attn_padding/flash_attn/bert_padding.py"


def _kit():
    return load_file_module(PATH, "kit_bert_padding")


def test_unpad_and_pad_equal_flash_attns_and_round_trip():
    kit = _kit()
    x = torch.randn(3, 5, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 0, 0]])
    ours, theirs = kit.unpad_input(x, mask), reference._unpad_input(x, mask)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b) if torch.is_tensor(a) else a == b
    packed, indices, cu_seqlens, longest, _ = ours
    assert cu_seqlens.tolist() == [0, 3, 8, 10] and longest == 5 and cu_seqlens.dtype == torch.int32
    back = kit.pad_input(packed, indices, 3, 5)
    assert torch.equal(back, reference._pad_input(packed, indices, 3, 5))
    assert torch.equal(back, x * mask.unsqueeze(-1))
    back.sum().backward()  # gradients reach exactly the real tokens
    assert torch.equal(x.grad, mask.unsqueeze(-1).expand_as(x).float())


def test_token_ids_keep_their_order():
    kit = _kit()
    ids = torch.arange(10).reshape(2, 5)
    packed, indices, *_ = kit.unpad_input(ids.unsqueeze(-1), torch.tensor([[0, 1, 1, 1, 0], [1, 1, 0, 0, 0]]))
    assert packed.squeeze(-1).tolist() == [1, 2, 3, 5, 6] and indices.tolist() == [1, 2, 3, 5, 6]
