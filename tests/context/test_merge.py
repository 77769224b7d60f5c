"""Timeline merging: exact (token, mask, logprob) preservation, drift, caps and truncation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from astuner.context.merge import build_timelines, merge_calls
from astuner.context.types import LLMCall

tokens = st.lists(st.integers(min_value=3, max_value=50), min_size=1, max_size=12)


@st.composite
def episodes(draw):
    """Calls where each either extends an earlier call's (prompt + response) or starts fresh."""
    calls: list[LLMCall] = []
    for i in range(draw(st.integers(1, 8))):
        if calls and draw(st.booleans()):
            base = draw(st.sampled_from(calls))
            # inserted context uses other ids than replies, so a branch never looks like a re-rendered reply
            prompt = base.prompt_ids + base.response_ids + draw(st.lists(st.integers(51, 99), max_size=6))
        else:
            prompt = [1] + draw(tokens)  # fresh prompts start with a marker no response uses
        response = draw(tokens)
        logprobs = [-(i + 1) - j / 100 for j in range(len(response))]
        calls.append(LLMCall(i, prompt, response, logprobs, "stop"))
    return calls


@given(episodes())
@settings(max_examples=300, deadline=None)
def test_merged_samples_keep_every_sampled_token_with_its_context_and_logprob(calls):
    result = merge_calls(calls, max_prompt_length=10**6, max_response_length=10**6, max_samples=10**6)
    assert result.drift == 0
    covered = 0
    for sample in result.samples:
        full = sample.prompt_ids + sample.response_ids
        offset = len(sample.prompt_ids)
        for index in sample.call_indices:
            call = calls[index]
            start = len(call.prompt_ids)
            # the call's whole prompt is the left context of its reply inside the merged sample
            assert full[:start] == call.prompt_ids
            span = slice(start - offset, start - offset + len(call.response_ids))
            assert full[start : start + len(call.response_ids)] == call.response_ids
            assert sample.loss_mask[span] == [1] * len(call.response_ids)
            assert sample.logprobs[span] == call.logprobs
            covered += len(call.response_ids)
        # nothing else is trained on
        assert sum(sample.loss_mask) == sum(len(calls[i].response_ids) for i in sample.call_indices)
        assert all(lp == 0.0 for lp, m in zip(sample.logprobs, sample.loss_mask, strict=True) if m == 0)
    assert covered == sum(len(c.response_ids) for c in calls)  # same loss: every sampled token, once
    assert result.tokens_merged <= result.tokens_unmerged  # fewer tokens


def call(i, prompt, response, finish="stop"):
    return LLMCall(i, prompt, response, [-0.1] * len(response), finish)


def test_multi_turn_merges_into_one_sample():
    calls = [call(0, [1, 2], [3, 4]), call(1, [1, 2, 3, 4, 9, 9], [5]), call(2, [1, 2, 3, 4, 9, 9, 5, 8], [6])]
    (s,) = merge_calls(calls, 100, 100, 4).samples
    assert s.prompt_ids == [1, 2] and s.response_ids == [3, 4, 9, 9, 5, 8, 6]
    assert s.loss_mask == [1, 1, 0, 0, 1, 0, 1] and s.call_indices == [0, 1, 2]


def test_a_re_tokenized_reply_starts_a_new_timeline_and_counts_as_drift():
    calls = [call(0, [1, 2], [3, 4, 5]), LLMCall(1, [1, 2, 3, 7, 5, 9], [6], [-0.1], "stop", drift=1)]
    timelines, drift = build_timelines(calls)
    assert drift == 1 and len(timelines) == 2


def test_a_changed_system_prompt_is_a_new_timeline_not_drift():
    calls = [call(0, [1, 2, 3], [4]), call(1, [1, 9, 3, 4, 5], [6])]
    timelines, drift = build_timelines(calls)
    assert drift == 0 and len(timelines) == 2


def test_cap_keeps_the_latest_timelines_and_counts_the_rest():
    calls = [call(0, [1, 10], [3]), call(1, [1, 11], [3]), call(2, [1, 12], [3]), call(3, [1, 10, 3, 7], [4])]
    result = merge_calls(calls, 100, 100, 2)
    assert [s.call_indices for s in result.samples] == [[0, 3], [2]]
    assert result.dropped_by_cap == 1


def test_truncation_rules():
    calls = [call(0, [1] * 5, [2] * 10), call(1, [1] * 50, [2])]
    result = merge_calls(calls, max_prompt_length=20, max_response_length=4, max_samples=10)
    (s,) = result.samples
    assert len(s.response_ids) == 4 and s.response_truncated
    assert result.dropped_prompt_too_long == 1 and result.truncated_responses == 1


def test_context_overflow_calls_are_skipped():
    calls = [call(0, [1, 2], [3]), LLMCall(1, [1] * 99, [], [], "context_overflow")]
    result = merge_calls(calls, 100, 100, 4)
    assert len(result.samples) == 1 and result.tokens_unmerged == 3
