"""The one task format every reader produces and every workflow consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Task:
    """One task, whatever its source (a dataset row, an env service id, a generated problem).

    Attributes:
        task_id: stable id; episodes of the same task form one GRPO group.
        main_query: the user's question, the seed workflow's input.
        init_messages: chat messages that open the episode (empty for single-query tasks).
        env_type: what kind of environment produced it, e.g. ``dataset``.
        metadata: everything else; readers put the reference answer at ``metadata["ground_truth"]``.
    """

    task_id: str
    main_query: str
    init_messages: list[dict[str, Any]] = field(default_factory=list)
    env_type: str = "dataset"
    metadata: dict[str, Any] = field(default_factory=dict)
