"""An engine that answers from a recording: each episode's calls, in order, token for token.

Why: a workflow and its judge are user code that one wants to step through under a debugger or
test in milliseconds, without an engine and with the exact replies a real run got. A request is
answered with the recorded reply only when its prompt ids equal the recorded prompt's; anything
else fails the episode with where it diverged, so a replay that passes really re-ran the episode.
"""

from __future__ import annotations

from typing import Any

from astuner.engine.protocol import Completion, EngineError, SamplingParams


class ReplayDiverged(EngineError):
    """A replayed episode sent another prompt than the recording (or more calls than it holds)."""


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first position where ``a`` and ``b`` differ (the shorter length if one is a prefix); None if equal."""
    for t, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return t
    return None if len(a) == len(b) else min(len(a), len(b))


class EpisodeReplay:
    """The engine of one replayed episode: its sent calls, answered in order."""

    def __init__(self, episode_id: str, calls: list[dict[str, Any]], tokenizer: Any = None):
        self.episode_id, self.tokenizer = episode_id, tokenizer
        self.calls = [c for c in calls if c.get("finish_reason") != "context_overflow"]  # never sent
        self.next = 0

    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        if self.next >= len(self.calls):
            raise ReplayDiverged(
                f"episode {self.episode_id} diverged at call {self.next}: the recording holds only "
                f"{len(self.calls)} engine call(s)"
            )
        call, k = self.calls[self.next], self.next
        recorded = list(call["prompt_ids"])
        t = first_difference(recorded, list(prompt_ids))
        if t is not None:
            raise ReplayDiverged(
                f"episode {self.episode_id} diverged at call {call.get('index', k)}, token {t}: "
                f"the recording has {self._token(recorded, t)} there, the replay {self._token(list(prompt_ids), t)} "
                f"(prompt lengths {len(recorded)} vs {len(prompt_ids)})"
            )
        self.next += 1
        return Completion(
            token_ids=list(call["response_ids"]), logprobs=list(call["logprobs"]), finish_reason=call["finish_reason"]
        )

    def _token(self, ids: list[int], t: int) -> str:
        if t >= len(ids):
            return "the end of the prompt"
        text = f" {self.tokenizer.decode([ids[t]])!r}" if self.tokenizer is not None else ""
        return f"id {ids[t]}{text}"


class ReplayEngine:
    """Per-episode replay engines (``RolloutRunner`` asks ``for_episode`` for each episode it runs).

    Args:
        episodes: the recorded calls of each episode, by the id the runner will give it.
        tokenizer: optional, to show the diverging tokens as text.
    """

    def __init__(self, episodes: dict[str, list[dict[str, Any]]], tokenizer: Any = None):
        self.episodes, self.tokenizer = episodes, tokenizer

    def for_episode(self, episode_id: str) -> EpisodeReplay:
        """The episode's engine; one missing from the recording fails at its first call (the episode, not the batch)."""
        return EpisodeReplay(episode_id, self.episodes.get(episode_id, []), self.tokenizer)

    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        raise ReplayDiverged("a replay engine answers per episode (for_episode), not for the whole batch")
