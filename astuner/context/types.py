"""Records of LLM calls and the training samples built from them.

A ``LLMCall`` is exactly what went to and came from the engine for one model call. A ``Sample``
is what a trainer consumes: prompt ids, response ids with a loss mask (1 = sampled by the policy,
0 = context inserted between turns) and the engine's logprobs for the sampled tokens.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (anything else becomes its ``str``), for records."""
    return json.loads(json.dumps(value, default=str)) if value is not None else None


@dataclass
class LLMCall:
    """One model call of an episode.

    Attributes:
        index: position in the episode (0-based).
        prompt_ids / response_ids / logprobs: engine input and output, token-exact.
        finish_reason: ``stop``, ``length``, or ``context_overflow`` (not sent: the prompt was too long).
        messages / tools: what the agent passed (formatted, OpenAI-style).
        spliced: earlier sampled turns put back verbatim in this prompt.
        drift: earlier sampled turns that reappear in this prompt re-tokenized into other ids.
        madness: names of triggered checks with a reason, e.g. ``{"wrong_toolcall": "unknown tool 'x'"}``.
        tool_call_parse_failures: ``<tool_call>`` blocks of the reply that did not parse (not JSON, no
            name, arguments not an object, never closed); such a reply goes back to the agent as text.
        tool_calls: the reply's tool calls that parsed (what the agent received as calls).
        tool_names: their tool names, in order (an agent with several tools: which one it used).
        t_start / t_end: wall-clock seconds (time.time()).
    """

    index: int
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    response_text: str = ""
    spliced: int = 0
    drift: int = 0
    madness: dict[str, str] = field(default_factory=dict)
    tool_call_parse_failures: int = 0
    tool_calls: int = 0
    tool_names: list[str] = field(default_factory=list)
    t_start: float = 0.0
    t_end: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sample:
    """One training sample (a merged timeline).

    Attributes:
        prompt_ids: the first call's prompt.
        response_ids: everything after it: sampled turns and the context inserted between them.
        loss_mask: 1 for sampled tokens, 0 for inserted context; same length as response_ids.
        logprobs: engine logprob of each sampled token, 0.0 where loss_mask is 0.
        call_indices: the calls merged into this sample.
        response_truncated: the response was cut to data.max_response_length.
    """

    prompt_ids: list[int]
    response_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    call_indices: list[int]
    response_truncated: bool = False

    @property
    def trained_tokens(self) -> int:
        return sum(self.loss_mask)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
