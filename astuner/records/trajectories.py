"""Write a step's episodes to ``trajectories/step_<N>.jsonl`` (one JSON object per episode).

Each line holds the episode's status, reward, madness, error, every LLM call token-exactly
(prompt ids, response ids, logprobs, messages, tools, timings) and its training samples (ids, loss
mask, logprobs). The file is written to a temporary name and renamed, so readers (logview) never
see half a step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from astuner.records.atomic import replaced_atomically


def write_step(trajectories_dir: Path, step: int, episodes: Iterable[Any], kind: str = "train") -> Path:
    """Write ``episodes`` (objects with ``to_dict()``) for ``step``; returns the file's path."""
    name = f"step_{step:06d}.jsonl" if kind == "train" else f"{kind}_step_{step:06d}.jsonl"
    path = trajectories_dir / name
    with replaced_atomically(path, fsync=True) as tmp, tmp.open("w", encoding="utf-8") as f:
        for episode in episodes:
            f.write(json.dumps(episode.to_dict(), ensure_ascii=False) + "\n")
    return path


def read_step(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
