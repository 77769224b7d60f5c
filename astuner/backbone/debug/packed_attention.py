"""Attention over packed rows that computes only the query-key pairs the packing needs.

A packed row (``shared_prefix.py``) holds a prefix once, then several samples' own tokens, each of
which sees the prefix and, causally, itself. Given as a mask to SDPA, the CPU kernel computes every
pair of the row: a main-job row of a 607-token prefix and 8 samples of 152 tokens has 3.3M pairs, of
which 1.0M are needed, and its backward costs about the same with the mask as with none. Here the
row's attention is three dense pieces, each run where the CPU kernel is efficient:

- the prefix against itself, causally (the CPU flash kernel, ``is_causal``);
- all samples' tokens against the prefix, no mask (the CPU flash kernel, one call per row);
- each sample's tokens against themselves, causally: short blocks, for which the flash kernel's
  backward has a fixed cost per (sample, head) far above their arithmetic, so they are plain
  batched matmuls and a softmax.

The pieces of a token are merged exactly by their log-sum-exp. Backward gives each piece the merged
output and log-sum-exp (the identity flash attention's backward rests on), so every piece's gradient
is that of the whole softmax. Values and gradients equal SDPA's with the row's mask up to rounding
(``tests/backbone/debug/test_packed_attention.py``).

It is a ``torch.library`` custom op, so that selective checkpointing can keep its output (and
log-sum-exp) and the recompute pass never runs it again. It calls the CPU flash kernel through its
ATen ops (``aten::_scaled_dot_product_flash_attention_for_cpu`` and its backward): SDPA's public
function returns no log-sum-exp and runs no backward on a given output. Where those ops are missing
(another torch build), ``available()`` is False and the trainer keeps SDPA with the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_FLASH_BACKWARD = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)


def available() -> bool:
    """Whether this torch has the CPU flash kernel's forward and backward ops this module calls."""
    return _FLASH is not None and _FLASH_BACKWARD is not None


# Own blocks are batched by length, padded to a multiple of this many tokens.
OWN_BUCKET = 32
# Scores more than this far below a query's log-sum-exp weigh less than 2e-35 and are taken as that:
# exp() of anything lower (or of -inf, at masked pairs) leaves the CPU's fast vector path, 5-7x slower.
_FLOOR = -80.0


@dataclass(frozen=True)
class PackedLayout:
    """Where each row's prefix and samples lie; built once per micro-batch, read by every layer.

    Args:
        prefixes: per row, the length of its shared prefix.
        ends: per row, where its last sample ends (the rest is padding).
        own_rows, own_cols: per length bucket, [samples, padded own length] the row and column of each
            sample's own tokens (those after the prefix), padded with the sample's first own token.
        own_valid: per length bucket, which of those entries are real tokens.
    """

    prefixes: tuple[int, ...]
    ends: tuple[int, ...]
    own_rows: tuple[torch.Tensor, ...]
    own_cols: tuple[torch.Tensor, ...]
    own_valid: tuple[torch.Tensor, ...]

    @classmethod
    def of(cls, prefixes: Sequence[int], samples: Sequence[Sequence[tuple[int, int]]]) -> PackedLayout:
        """``samples[r]``: the (start column, length) of row r's samples' own tokens, in order."""
        buckets: dict[int, list[tuple[int, int, int]]] = {}
        for r, row in enumerate(samples):
            for start, n in row:
                if n:
                    buckets.setdefault(-(-n // OWN_BUCKET) * OWN_BUCKET, []).append((r, start, n))
        rows, cols, valid = [], [], []
        for width, spans in sorted(buckets.items()):
            rows.append(torch.tensor([r for r, _, _ in spans])[:, None].expand(-1, width).contiguous())
            start = torch.tensor([c for _, c, _ in spans])[:, None]
            length = torch.tensor([n for *_, n in spans])[:, None]
            offset = torch.arange(width)[None, :]
            valid.append(offset < length)
            cols.append(start + torch.where(offset < length, offset, 0))
        ends = [max([p] + [start + n for start, n in row]) for p, row in zip(prefixes, samples, strict=True)]
        return cls(tuple(prefixes), tuple(ends), tuple(rows), tuple(cols), tuple(valid))


def packed_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layout: PackedLayout, scale: float
) -> torch.Tensor:
    """Attention of packed rows: [rows, heads, width, head dim] in, the same shape out (zeros at padding).

    ``key`` and ``value`` have as many heads as ``query`` (repeat grouped heads before).
    """
    out, _ = torch.ops.astuner.packed_attention(
        query, key, value, list(layout.own_rows), list(layout.own_cols), list(layout.own_valid),
        list(layout.prefixes), list(layout.ends), scale,
    )  # fmt: skip
    return out


def _own(t: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """[rows, heads, width, ...] -> [samples, heads, padded own length, ...]."""
    return t[rows, :, cols].transpose(1, 2)


def _put_own(dst: torch.Tensor, src: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, valid: torch.Tensor,
             add: bool) -> None:  # fmt: skip
    """Write (or add) ``src`` ([samples, heads, own, ...]) into ``dst`` ([rows, heads, width, ...]) where valid."""
    values = src.transpose(1, 2)[valid].to(dst.dtype)  # [valid entries, heads, ...]
    r, c = rows[valid], cols[valid]
    if add:
        dst[r, :, c] += values
    else:
        dst[r, :, c] = values


def _own_weights(q: torch.Tensor, k: torch.Tensor, scale: float, lse: torch.Tensor) -> torch.Tensor:
    """exp(scores - lse) of each sample's own tokens against themselves, causal: [samples, heads, own, own]."""
    # fp32 scores, as the flash kernel keeps them (a bf16 product would round a score of 10 by up to 0.04)
    s = (q.float() @ k.float().transpose(-1, -2)).mul_(scale).sub_(lse[..., None]).clamp_(min=_FLOOR).exp_()
    n = s.shape[-1]
    return s.masked_fill_(torch.ones(n, n, dtype=torch.bool, device=s.device).triu_(1), 0.0)


@torch.library.custom_op("astuner::packed_attention", mutates_args=())
def _packed_attention_op(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    own_rows: list[torch.Tensor],
    own_cols: list[torch.Tensor],
    own_valid: list[torch.Tensor],
    prefixes: list[int],
    ends: list[int],
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    out = torch.zeros_like(query)
    lse = torch.zeros(query.shape[:3], dtype=torch.float32, device=query.device)
    for r, (p, end) in enumerate(zip(prefixes, ends, strict=True)):
        q, k, v = query[r : r + 1], key[r : r + 1, :, :p], value[r : r + 1, :, :p]
        o, lo = _FLASH(q[:, :, :p], k, v, 0.0, True, scale=scale)
        out[r, :, :p], lse[r, :, :p] = o[0], lo[0]
        if end > p:
            o, lo = _FLASH(q[:, :, p:end], k, v, 0.0, False, scale=scale)
            out[r, :, p:end], lse[r, :, p:end] = o[0], lo[0]
    for rows, cols, valid in zip(own_rows, own_cols, own_valid, strict=True):
        ix = rows, cols
        lse_prefix = _own(lse, *ix)
        # the own part's weights relative to the prefix part's log-sum-exp, then the token's whole one
        weights = _own_weights(_own(query, *ix), _own(key, *ix), scale, lse_prefix)
        total = weights.sum(-1).add_(1.0)  # the prefix part weighs exp(0) = 1 on this scale
        own_out = (weights.to(value.dtype) @ _own(value, *ix)).float().add_(_own(out, *ix).float())
        own_out.div_(total[..., None])
        _put_own(out, own_out, *ix, valid, add=False)
        _put_own(lse, lse_prefix + total.log_(), *ix, valid, add=False)
    return out, lse


@_packed_attention_op.register_fake
def _(query, key, value, own_rows, own_cols, own_valid, prefixes, ends, scale):  # noqa: ANN001, ANN202
    return torch.empty_like(query), query.new_empty(query.shape[:3], dtype=torch.float32)


def _setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
    query, key, value, own_rows, own_cols, own_valid, prefixes, ends, scale = inputs
    out, lse = output
    ctx.save_for_backward(query, key, value, out, lse)
    ctx.own = list(zip(own_rows, own_cols, own_valid, strict=True))
    ctx.prefixes, ctx.ends, ctx.scale = prefixes, ends, scale


def _backward(ctx, grad_out: torch.Tensor, _grad_lse: torch.Tensor | None):  # noqa: ANN001, ANN202
    query, key, value, out, lse = ctx.saved_tensors
    scale = ctx.scale
    grad_out = grad_out.contiguous()
    dq = torch.zeros(query.shape, dtype=torch.float32, device=query.device)
    dk = torch.zeros_like(dq)
    dv = torch.zeros_like(dq)
    for r, (p, end) in enumerate(zip(ctx.prefixes, ctx.ends, strict=True)):
        k, v = key[r : r + 1, :, :p], value[r : r + 1, :, :p]
        gq, gk, gv = _FLASH_BACKWARD(
            grad_out[r : r + 1, :, :p], query[r : r + 1, :, :p], k, v,
            out[r : r + 1, :, :p], lse[r : r + 1, :, :p], 0.0, True, scale=scale,
        )  # fmt: skip
        dq[r, :, :p] += gq[0]
        dk[r, :, :p] += gk[0]
        dv[r, :, :p] += gv[0]
        if end > p:
            gq, gk, gv = _FLASH_BACKWARD(
                grad_out[r : r + 1, :, p:end], query[r : r + 1, :, p:end], k, v,
                out[r : r + 1, :, p:end], lse[r : r + 1, :, p:end], 0.0, False, scale=scale,
            )  # fmt: skip
            dq[r, :, p:end] += gq[0]
            dk[r, :, :p] += gk[0]
            dv[r, :, :p] += gv[0]
    for rows, cols, valid in ctx.own:
        ix = rows, cols
        q, k, v = (_own(t, *ix) for t in (query, key, value))
        do = _own(grad_out, *ix) * valid[:, None, :, None]  # padding entries carry no gradient
        delta = (do.float() * _own(out, *ix).float()).sum(-1)  # rowsum(dO * O) of the merged output
        probs = _own_weights(q, k, scale, _own(lse, *ix))
        dv_own = probs.to(do.dtype).transpose(-1, -2) @ do
        ds = (do @ v.transpose(-1, -2)).float().sub_(delta[..., None]).mul_(probs).mul_(scale).to(q.dtype)
        _put_own(dq, ds @ k, *ix, valid, add=True)
        _put_own(dk, ds.transpose(-1, -2) @ q, *ix, valid, add=True)
        _put_own(dv, dv_own, *ix, valid, add=True)
    none = [None] * len(ctx.own)
    return dq.to(query.dtype), dk.to(key.dtype), dv.to(value.dtype), none, none, none, None, None, None


_packed_attention_op.register_autograd(_backward, setup_context=_setup_context)


# ---- transformers -------------------------------------------------------------------------
ATTENTION = "astuner_packed"


def _hf_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    packed_layout: PackedLayout | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: packed rows when the forward was given ``packed_layout``, else SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if packed_layout is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    device = query.device.type
    # as autocast runs SDPA: in its lower precision (rotary embeddings leave q and k in fp32, v in bf16)
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else value.dtype
    query, key, value = query.to(dtype), key.to(dtype), value.to(dtype)
    groups = query.shape[1] // key.shape[1]  # grouped-query attention: each key head serves `groups` query heads
    if groups > 1:
        key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return packed_attention(query, key, value, packed_layout, scale).transpose(1, 2), None


def use_packed_attention(model: torch.nn.Module) -> None:
    """Route ``model``'s attention through this module (transformers' ``AttentionInterface``).

    A forward given ``packed_layout=`` runs ``packed_attention``; any other forward runs SDPA with
    the masks transformers builds for SDPA, as before.
    """
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION, _hf_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    model.set_attn_implementation(ATTENTION)
