"""Packed micro-batches in which samples that share a token prefix hold that prefix once (exact).

The samples of a GRPO group start with the same prompt (the agent's system prompt, tool schema and
task: 290 to 620 of the ~650 tokens of a main-job sample), so padded rows spend much of their compute on copies of
one prefix. Here such samples share one row: the prefix, then each sample's own tokens one after the
other, with position ids that restart after the prefix for every sample and an attention mask that
lets each sample's tokens see the prefix and, causally, only themselves. Each token then gets exactly
the hidden state it gets in its own sequence, and one backward pass sends every sample's gradient
through the shared prefix, so loss and gradients equal those of padded rows up to floating-point
rounding (``tests/backbone/debug/test_shared_prefix.py`` checks it on the embedded model).

Which samples share a row comes from the token ids alone (longest common prefix, nothing assumed
about prompts): samples are visited in lexicographic order, so those with a common prefix are
adjacent, and a row grows while that costs less than starting a new one. A row's cost counts the
query-key pairs its attention computes: all pairs of the row under SDPA with the row's mask (the square
of its length), or the prefix's and each sample's own under ``packed_attention.py``; that keeps
different tasks, which share only the system prompt, in rows of their own. Rows of similar length
are then stacked, padded to a multiple of 128 tokens, into one forward pass under the micro-batch
budget, as fixed costs per pass (weight casts, gradient accumulation) are paid once per pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from astuner.backbone.debug.packed_attention import PackedLayout

# A row position costs about as much as attending to this many keys (forward + backward, bf16 on the
# 2-core CPU machine with SmolLM2-135M: a 1049-token row spends ~1.1 s in its 30 attention layers and
# ~1.6 s in the rest). Only the packing depends on it, never the result.
ATTENTION_KEYS = 1500
# The same through packed_attention.py, which computes only the pairs a row needs but at about twice the
# cost per pair (a 607-token prefix and 8 samples of 152 tokens: 1.0M pairs in 94 ms against the masked
# row's 3.3M pairs in 159 ms, forward + backward of one layer).
PACKED_ATTENTION_KEYS = 750
# A micro-batch's width is rounded up to a multiple of this. oneDNN compiles (and keeps, up to 1,024) one
# kernel per matmul shape, so exact widths made new kernels in every pass: replaying four recorded
# main-job steps in one process (full fine-tuning, 2-core CPU machine), 128 took 81.5 / 74.2 / 34.0 / 77.4 s
# against 88.0 / 79.8 / 35.9 / 77.4 s, and the process ended at 2.65 instead of 2.79 GiB (peak 4.54, 4.82).
WIDTH_MULTIPLE = 128


def tokens(sample: Any) -> list[int]:
    """The sample's whole token sequence (prompt then response)."""
    return list(sample.prompt_ids) + list(sample.response_ids)


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix that every sequence in ``seqs`` starts with."""
    first, shortest = seqs[0], min(len(s) for s in seqs)
    for i in range(shortest):
        if any(s[i] != first[i] for s in seqs):
            return i
    return shortest


@dataclass(frozen=True)
class Row:
    """Samples (objects with ``.sample``) laid out as their common prefix, then each one's remaining tokens."""

    items: tuple[Any, ...]
    prefix: int
    packed: bool = False  # attended through packed_attention.py (else SDPA with the row's mask)

    @classmethod
    def of(cls, items: Sequence[Any], packed: bool = False) -> Row:
        return cls(tuple(items), common_prefix([tokens(i.sample) for i in items]), packed)

    @property
    def length(self) -> int:
        return self.prefix + sum(len(tokens(i.sample)) - self.prefix for i in self.items)

    @property
    def own_spans(self) -> list[tuple[int, int]]:
        """(start column, length) of each item's own tokens (those after the prefix), in order."""
        spans, at = [], self.prefix
        for item in self.items:
            own = len(tokens(item.sample)) - self.prefix
            spans.append((at, own))
            at += own
        return spans

    @property
    def cost(self) -> float:
        """The row's positions plus its attention's query-key pairs, in units of one position's other work."""
        if not self.packed:  # the mask's kernel computes every pair of the row
            return self.length * (1 + self.length / ATTENTION_KEYS)
        p = self.prefix
        pairs = p * p / 2 + sum(n * (p + n / 2) for _, n in self.own_spans)
        return self.length + pairs / PACKED_ATTENTION_KEYS


def pack_rows(items: Sequence[Any], budget: int, packed: bool = False) -> list[Row]:
    """Rows of at most ``budget`` tokens (a longer single sample gets a row of its own).

    The next sample (in lexicographic order) joins the current row when the joined row costs no more
    than the current row and a new row holding only that sample.
    """
    rows: list[Row] = []
    for item in sorted(items, key=lambda i: tokens(i.sample)):
        if rows:
            joined = Row.of([*rows[-1].items, item], packed)
            if joined.length <= budget and joined.cost <= rows[-1].cost + Row.of([item], packed).cost:
                rows[-1] = joined
                continue
        rows.append(Row.of([item], packed))
    return rows


@dataclass(frozen=True)
class MicroBatch:
    """Rows run in one forward/backward pass, right-padded to the longest."""

    rows: tuple[Row, ...]

    @property
    def items(self) -> tuple[Any, ...]:
        return tuple(i for row in self.rows for i in row.items)

    @property
    def width(self) -> int:
        return padded_width(max(row.length for row in self.rows))

    def _layout(self, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``input_ids``, ``position_ids`` and each position's segment (0: prefix, k: the row's k-th sample,
        -1: padding)."""
        n, width = len(self.rows), self.width
        ids = torch.full((n, width), pad_id, dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        segment = torch.full((n, width), -1, dtype=torch.long)
        for r, row in enumerate(self.rows):
            seqs = [tokens(i.sample) for i in row.items]
            p = row.prefix
            ids[r, :p], segment[r, :p], positions[r, :p] = torch.tensor(seqs[0][:p]), 0, torch.arange(p)
            at = p
            for k, seq in enumerate(seqs, start=1):
                own = len(seq) - p
                ids[r, at : at + own] = torch.tensor(seq[p:], dtype=torch.long)
                positions[r, at : at + own] = torch.arange(p, len(seq))
                segment[r, at : at + own] = k
                at += own
        return ids, positions, segment

    def inputs(self, pad_id: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """``input_ids``, ``position_ids`` and a 4D additive ``attention_mask`` (0: may attend, -inf: not).

        transformers passes a 4D mask to attention as it is; in the attention's ``dtype`` it is used
        as it is, where a boolean one was converted again in each layer. A padding position sees only
        itself, so no mask row is empty (an empty row would put NaN into the backward pass).
        """
        ids, positions, segment = self._layout(pad_id)
        width = self.width
        q, kv = segment[:, :, None], segment[:, None, :]
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        allowed = causal & (q >= 0) & (kv >= 0) & ((kv == 0) | (kv == q)) | torch.eye(width, dtype=torch.bool)
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, float("-inf"))
        return {
            "input_ids": ids.to(device),
            "position_ids": positions.to(device),
            "attention_mask": mask[:, None].to(device),
        }

    def packed_inputs(self, pad_id: int, device: torch.device) -> dict[str, Any]:
        """``input_ids``, ``position_ids`` and the ``packed_layout`` that ``packed_attention.py`` reads instead
        of a mask."""
        ids, positions, _ = self._layout(pad_id)
        layout = PackedLayout.of([row.prefix for row in self.rows], [row.own_spans for row in self.rows])
        return {"input_ids": ids.to(device), "position_ids": positions.to(device), "packed_layout": layout}

    def flat_index(self, positions: torch.Tensor) -> torch.Tensor:
        """Where each of ``positions`` ([items, T]: positions in each item's own sequence) sits in the body's
        output flattened to ``[rows * width, hidden]``; items in ``self.items`` order."""
        base, prefix, start = [], [], []
        for r, row in enumerate(self.rows):
            for at, _ in row.own_spans:
                base.append(r * self.width)
                prefix.append(row.prefix)
                start.append(at)
        base_t, prefix_t, start_t = (torch.tensor(v, device=positions.device)[:, None] for v in (base, prefix, start))
        return base_t + torch.where(positions < prefix_t, positions, start_t + positions - prefix_t)


def padded_width(length: int) -> int:
    """``length`` rounded up to a multiple of ``WIDTH_MULTIPLE``."""
    return -(-length // WIDTH_MULTIPLE) * WIDTH_MULTIPLE


def micro_batches(items: Sequence[Any], budget: int, packed: bool = False) -> list[MicroBatch]:
    """``pack_rows``, then rows (longest first) stacked while rows x padded width stays within ``budget``.

    ``packed``: the rows attend through ``packed_attention.py``, which changes what a row costs.
    """
    rows = sorted(pack_rows(items, budget, packed), key=lambda r: -r.length)
    batches: list[list[Row]] = []
    for row in rows:
        if batches and padded_width(batches[-1][0].length) * (len(batches[-1]) + 1) <= budget:
            batches[-1].append(row)
        else:
            batches.append([row])
    return [MicroBatch(tuple(b)) for b in batches]
