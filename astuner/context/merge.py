"""Merge an episode's LLM calls into timelines, and timelines into training samples.

A call whose prompt ids start with an existing timeline's whole token sequence (its first prompt,
then every reply and the context inserted between) extends that timeline: the new context gets
loss mask 0, the new reply mask 1 with its logprobs. Any other call starts a new timeline. Merging
keeps the loss identical (every sampled token keeps its exact left context and logprob) while each
shared prefix is trained on once instead of once per call.

Retokenization drift: when an earlier reply reappears in a prompt as text that re-tokenizes into
other ids than were sampled (the renderer reports it per call; splicing normally prevents it), the
prompt no longer extends that timeline, so the call starts a new one and the drift is counted:
re-tokenized model output is never trained on as if it were sampled.

Which samples are kept (``rollout.multi_turn.max_sample_per_task = N``): the N timelines whose last
call came latest (they hold the episode's final answer and the most context); the rest are counted
as dropped. Samples whose prompt exceeds ``data.max_prompt_length`` are dropped (a cut prompt would
change every logprob); responses beyond ``data.max_response_length`` are cut and flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from astuner.context.types import LLMCall, Sample


@dataclass
class Timeline:
    tokens: list[int]
    mask: list[int]
    logprobs: list[float]
    prompt_len: int
    calls: list[int] = field(default_factory=list)

    def extend(self, context: Sequence[int], call: LLMCall) -> None:
        self.tokens += list(context) + call.response_ids
        self.mask += [0] * len(context) + [1] * len(call.response_ids)
        self.logprobs += [0.0] * len(context) + list(call.logprobs)
        self.calls.append(call.index)


@dataclass
class MergeResult:
    samples: list[Sample]
    timelines: int
    drift: int
    dropped_by_cap: int
    dropped_prompt_too_long: int
    truncated_responses: int
    tokens_merged: int
    tokens_unmerged: int

    def metrics(self) -> dict[str, int]:
        return {
            "samples": len(self.samples),
            "timelines": self.timelines,
            "drift": self.drift,
            "samples_dropped_by_cap": self.dropped_by_cap,
            "samples_dropped_prompt_too_long": self.dropped_prompt_too_long,
            "responses_truncated": self.truncated_responses,
            "tokens_merged": self.tokens_merged,
            "tokens_unmerged": self.tokens_unmerged,
        }


def build_timelines(calls: Sequence[LLMCall]) -> tuple[list[Timeline], int]:
    """Group calls (in order) into timelines; returns them and the drift count (see ``LLMCall.drift``)."""
    timelines: list[Timeline] = []
    drift = sum(c.drift for c in calls)
    for call in calls:
        if call.finish_reason == "context_overflow":
            continue  # never sent: nothing was sampled
        prompt = call.prompt_ids
        best: Timeline | None = None
        for tl in timelines:
            if len(prompt) >= len(tl.tokens) and prompt[: len(tl.tokens)] == tl.tokens:
                if best is None or len(tl.tokens) > len(best.tokens):
                    best = tl
        if best is not None:
            best.extend(prompt[len(best.tokens) :], call)
            continue
        tl = Timeline(tokens=list(prompt), mask=[0] * len(prompt), logprobs=[0.0] * len(prompt), prompt_len=len(prompt))
        tl.extend([], call)
        timelines.append(tl)
    return timelines, drift


def merge_calls(
    calls: Sequence[LLMCall], max_prompt_length: int, max_response_length: int, max_samples: int
) -> MergeResult:
    """Build the episode's training samples (see the module docstring for the rules)."""
    timelines, drift = build_timelines(calls)
    ordered = sorted(timelines, key=lambda t: t.calls[-1])
    kept = ordered[-max_samples:] if max_samples > 0 else []
    dropped_cap = len(ordered) - len(kept)
    samples: list[Sample] = []
    too_long = truncated = 0
    for tl in sorted(kept, key=lambda t: t.calls[0]):
        if tl.prompt_len > max_prompt_length:
            too_long += 1
            continue
        response = tl.tokens[tl.prompt_len :]
        cut = len(response) > max_response_length
        truncated += cut
        end = tl.prompt_len + min(len(response), max_response_length)
        samples.append(
            Sample(
                prompt_ids=tl.tokens[: tl.prompt_len],
                response_ids=tl.tokens[tl.prompt_len : end],
                loss_mask=tl.mask[tl.prompt_len : end],
                logprobs=tl.logprobs[tl.prompt_len : end],
                call_indices=list(tl.calls),
                response_truncated=cut,
            )
        )
    sent = [c for c in calls if c.finish_reason != "context_overflow"]
    return MergeResult(
        samples=samples,
        timelines=len(timelines),
        drift=drift,
        dropped_by_cap=dropped_cap,
        dropped_prompt_too_long=too_long,
        truncated_responses=truncated,
        tokens_merged=sum(len(s.prompt_ids) + len(s.response_ids) for s in samples),
        tokens_unmerged=sum(len(c.prompt_ids) + len(c.response_ids) for c in sent),
    )
