"""Read-only access to one experiment folder, shaped for the viewer's pages.

The viewer must stay responsive on large steps (1000+ episodes, 10k-token samples) and on a run
that is still writing. So a step file is indexed once per (size, mtime): one pass that keeps a
small summary and the byte offset of every episode line; an episode page then seeks to its line
and parses only that. The debug backbone replaces step files atomically; verl and Trinity workers
append to one file each per step (``verl_step_N.<pid>.jsonl``), so a line being written is skipped
until it is whole. Nothing here writes into the experiment folder.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astuner.logview.tokens import TokenDecoder

# ``step_N.jsonl`` / ``val_step_N.jsonl`` (debug backbone, one file per step, written atomically) and
# ``<backbone>[_val]_step_N.<pid>.jsonl`` (verl/Trinity: one file per rollout worker process, appended).
_STEP_FILE = re.compile(r"^(?:(?P<prefix>[a-z]+(?:_val)?)_)?step_(?P<step>\d+)(?:\.(?P<pid>\d+))?\.jsonl$")
SORT_KEYS = ("task", "reward", "advantage", "status", "tokens", "seconds")


class RecordsNotFound(LookupError):
    """A step, episode or sample the request named does not exist (HTTP 404)."""


def is_experiment_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / "trajectories").is_dir()


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _summary(ep: dict[str, Any]) -> dict[str, Any]:
    """What a step page shows of an episode (no calls, no samples)."""
    samples = ep.get("samples") or []
    calls = ep.get("calls") or []
    metrics = ep.get("metrics") or {}
    error = ep.get("error") or ""
    return {
        "episode_id": ep.get("episode_id"),
        "task_id": ep.get("task_id"),
        "repeat_index": ep.get("repeat_index"),
        "status": ep.get("status"),
        "reward": _finite(ep.get("reward")),
        "advantage": _finite(ep.get("advantage")),
        "is_success": ep.get("is_success"),
        "madness": ep.get("madness") or [],
        "context_overflow": bool(ep.get("context_overflow")),
        "error": error.strip().splitlines()[-1] if error.strip() else None,
        "calls": len(calls),
        "samples": len(samples),
        "trained_tokens": sum(sum(s.get("loss_mask") or []) for s in samples),
        "tokens": sum(len(s.get("prompt_ids") or []) + len(s.get("response_ids") or []) for s in samples),
        "drift": sum(int(c.get("drift") or 0) for c in calls),
        "tool_call_parse_failures": sum(int(c.get("tool_call_parse_failures") or 0) for c in calls),
        "seconds": _finite(metrics.get("seconds")),
    }


def _kind(prefix: str | None) -> str:
    return "val" if prefix == "val" or (prefix or "").endswith("_val") else "train"


def _json_lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being appended right now
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _verl_metrics(path: Path) -> list[dict[str, Any]]:
    """verl's file-logger rows (``{"step", "data"}``) under the names the overview charts use."""
    if not path.is_file():
        return []
    out = []
    for row in _json_lines(path):
        data, step = row.get("data") or {}, row.get("step")
        if "timing_s/step" in data:
            out.append(
                {
                    "step": step,
                    "phase": "train",
                    "reward_mean": _finite(data.get("critic/score/mean")),
                    "step_seconds": _finite(data.get("timing_s/step")),
                }
            )
        val = [v for k, v in data.items() if k.startswith("val-core/") and k.endswith("/reward/mean@1")]
        if val:
            out.append({"step": step, "phase": "validation", "val/reward_mean": _finite(val[0])})
    return out


@dataclass
class _StepIndex:
    stamp: tuple[int, int]
    summaries: list[dict[str, Any]]
    offsets: dict[str, int]


@dataclass
class _Step:
    """A step's episodes across its files (one for the debug backbone, one per worker for verl/Trinity)."""

    summaries: list[dict[str, Any]]
    where: dict[str, tuple[Path, int]]


class ExperimentRecords:
    """One experiment folder (``launcher_record/<experiment>/``), read-only."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self._indexes: dict[Path, _StepIndex] = {}
        self._lock = threading.Lock()
        self.decoder = TokenDecoder.for_experiment(self.root)

    # ---- overview -------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        config = self.root / "config.yaml"
        return {
            "name": self.root.name,
            "path": str(self.root),
            "config": config.read_text(encoding="utf-8", errors="replace") if config.is_file() else "",
            "metrics": self.metrics(),
            "steps": self.steps(),
            "tokenizer": self.decoder.source,
            "running": self._running(),
        }

    def metrics(self) -> list[dict[str, Any]]:
        """The run's step metrics: astuner's ``metrics.jsonl``, else verl's (``verl/metrics.jsonl``) mapped."""
        path = self.root / "metrics.jsonl"
        if not path.is_file():
            return _verl_metrics(self.root / "verl" / "metrics.jsonl")
        return [{k: _finite(v) for k, v in row.items() if not isinstance(v, dict | list)} for row in _json_lines(path)]

    def _step_files(self) -> dict[tuple[str, int], list[Path]]:
        out: dict[tuple[str, int], list[Path]] = {}
        folder = self.root / "trajectories"
        if folder.is_dir():
            for path in folder.iterdir():
                m = _STEP_FILE.match(path.name)
                if m:
                    out.setdefault((_kind(m["prefix"]), int(m["step"])), []).append(path)
        return {key: sorted(paths) for key, paths in out.items()}

    def steps(self) -> list[dict[str, Any]]:
        """Every recorded step, training and validation, in step order."""
        out = [
            {"kind": kind, "step": step, "bytes": sum(p.stat().st_size for p in paths)}
            for (kind, step), paths in self._step_files().items()
        ]
        return sorted(out, key=lambda s: (s["step"], s["kind"] == "val"))  # validation at N follows training step N

    def _running(self) -> bool:
        """A live run holds ``.lock`` (flock); we only look, never take it."""
        import fcntl

        lock = self.root / ".lock"
        if not lock.is_file():
            return False
        with lock.open("r") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False

    # ---- a step ---------------------------------------------------------------------------
    def _step(self, kind: str, step: int) -> _Step:
        if kind not in ("train", "val") or step < 0:
            raise RecordsNotFound(f"no step kind={kind!r} step={step}")
        paths = self._step_files().get((kind, step))
        if not paths:
            raise RecordsNotFound(f"no {kind} step {step} in {self.root / 'trajectories'}")
        summaries: list[dict[str, Any]] = []
        where: dict[str, tuple[Path, int]] = {}
        for path in paths:
            index = self._index(path)
            summaries += index.summaries
            where.update({episode_id: (path, offset) for episode_id, offset in index.offsets.items()})
        return _Step(summaries, where)

    def _index(self, path: Path) -> _StepIndex:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._indexes.get(path)
            if cached is not None and cached.stamp == stamp:
                return cached
            summaries, offsets = [], {}
            with path.open("rb") as f:
                offset = 0
                for raw in f:
                    if raw.strip():
                        try:
                            ep = json.loads(raw)
                        except json.JSONDecodeError:
                            continue  # a worker is appending this line right now (verl/Trinity records)
                        summary = _summary(ep)
                        summaries.append(summary)
                        offsets[str(summary["episode_id"])] = offset
                    offset += len(raw)
            index = _StepIndex(stamp, summaries, offsets)
            self._indexes[path] = index
            return index

    def step(
        self,
        kind: str,
        step: int,
        *,
        offset: int = 0,
        limit: int = 100,
        sort: str = "task",
        descending: bool = False,
        status: str = "",
        flag: str = "",
        query: str = "",
    ) -> dict[str, Any]:
        """A page of a step's episode summaries, filtered and sorted, plus per-task group stats."""
        index = self._step(kind, step)
        rows = index.summaries
        if status:
            rows = [r for r in rows if r["status"] == status]
        if flag == "mad":
            rows = [r for r in rows if r["madness"]]
        elif flag == "success":
            rows = [r for r in rows if r["is_success"]]
        elif flag == "no_success":
            rows = [r for r in rows if not r["is_success"]]
        elif flag == "drift":
            rows = [r for r in rows if r["drift"]]
        if query:
            q = query.lower()
            rows = [r for r in rows if q in f"{r['task_id']} {r['episode_id']} {r['error'] or ''}".lower()]
        rows = sorted(rows, key=_sort_key(sort), reverse=descending)
        groups: dict[str, list[float]] = {}
        for r in index.summaries:
            if r["reward"] is not None:
                groups.setdefault(str(r["task_id"]), []).append(r["reward"])
        return {
            "kind": kind,
            "step": step,
            "total": len(index.summaries),
            "matched": len(rows),
            "offset": offset,
            "limit": limit,
            "episodes": rows[offset : offset + limit],
            "groups": {
                t: {"n": len(v), "reward_mean": sum(v) / len(v), "zero_signal": max(v) == min(v)}
                for t, v in groups.items()
            },
            "counts": {s: sum(r["status"] == s for r in index.summaries) for s in ("ok", "failed", "timeout")},
        }

    # ---- an episode and a sample -----------------------------------------------------------
    def episode(self, kind: str, step: int, episode_id: str) -> dict[str, Any]:
        where = self._step(kind, step).where
        if episode_id not in where:
            raise RecordsNotFound(f"no episode {episode_id!r} in {kind} step {step}")
        path, offset = where[episode_id]
        with path.open("rb") as f:
            f.seek(offset)
            return json.loads(f.readline())

    def episode_page(self, kind: str, step: int, episode_id: str) -> dict[str, Any]:
        """The episode without its token arrays (those come per sample)."""
        ep = self.episode(kind, step, episode_id)
        t0 = min((c.get("t_start") or 0.0 for c in ep.get("calls") or []), default=0.0)
        calls = []
        for c in ep.get("calls") or []:
            calls.append(
                {
                    k: c.get(k)
                    for k in ("index", "finish_reason", "messages", "tools", "response_text", "spliced", "drift")
                    + ("tool_call_parse_failures",)
                }
                | {
                    "madness": c.get("madness") or {},
                    "prompt_tokens": len(c.get("prompt_ids") or []),
                    "response_tokens": len(c.get("response_ids") or []),
                    "start_s": (c.get("t_start") or t0) - t0,
                    "seconds": (c.get("t_end") or 0.0) - (c.get("t_start") or 0.0),
                }
            )
        samples = [
            {
                "index": i,
                "call_indices": s.get("call_indices") or [],
                "prompt_tokens": len(s.get("prompt_ids") or []),
                "response_tokens": len(s.get("response_ids") or []),
                "trained_tokens": sum(s.get("loss_mask") or []),
                "response_truncated": bool(s.get("response_truncated")),
            }
            for i, s in enumerate(ep.get("samples") or [])
        ]
        return {
            "summary": _summary(ep),
            "error": ep.get("error"),
            "output_metadata": ep.get("output_metadata"),
            "metrics": {k: _finite(v) for k, v in (ep.get("metrics") or {}).items()},
            "calls": calls,
            "samples": samples,
        }

    def sample_page(self, kind: str, step: int, episode_id: str, index: int) -> dict[str, Any]:
        """Every token of one sample: id, text, loss mask, logprob, plus merge/drift markers.

        ``tokens`` is columnar (parallel arrays) to keep a 10k-token answer small. Markers sit at
        the first token of each sampled turn (a merge point when the sample holds several calls);
        a call whose re-rendered prompt drifted from the sampled ids is flagged there.
        """
        ep = self.episode(kind, step, episode_id)
        samples = ep.get("samples") or []
        if not 0 <= index < len(samples):
            raise RecordsNotFound(f"episode {episode_id!r} has {len(samples)} samples, not index {index}")
        s = samples[index]
        prompt, response = s.get("prompt_ids") or [], s.get("response_ids") or []
        mask = s.get("loss_mask") or [0] * len(response)
        logprobs = s.get("logprobs") or [0.0] * len(response)
        ids = list(prompt) + list(response)
        sampled_logprobs = [_finite(float(x)) if m else None for x, m in zip(logprobs, mask, strict=True)]
        calls = {c.get("index"): c for c in ep.get("calls") or []}
        call_indices = s.get("call_indices") or []
        markers, turn = [], 0
        for pos, m in enumerate(mask):
            if m and (pos == 0 or not mask[pos - 1]):
                call = calls.get(call_indices[turn]) if turn < len(call_indices) else None
                markers.append(
                    {
                        "position": len(prompt) + pos,
                        "call": call_indices[turn] if turn < len(call_indices) else None,
                        "merge": turn > 0,
                        "drift": int(call.get("drift") or 0) if call else 0,
                        "spliced": int(call.get("spliced") or 0) if call else 0,
                    }
                )
                turn += 1
        return {
            "episode_id": episode_id,
            "index": index,
            "prompt_length": len(prompt),
            "call_indices": call_indices,
            "response_truncated": bool(s.get("response_truncated")),
            "reward": _finite(ep.get("reward")),
            "advantage": _finite(ep.get("advantage")),
            "tokens": {
                "id": ids,
                "text": self.decoder.pieces(ids),
                "mask": [0] * len(prompt) + [int(m) for m in mask],
                "logprob": [None] * len(prompt) + sampled_logprobs,
            },
            "markers": markers,
        }


def _sort_key(sort: str):
    if sort not in SORT_KEYS:
        raise RecordsNotFound(f"sort must be one of {', '.join(SORT_KEYS)}, not {sort!r}")

    def number(v: Any) -> float:
        return float("-inf") if v is None else float(v)

    return {
        "task": lambda r: (str(r["task_id"]), r["repeat_index"] or 0),
        "reward": lambda r: number(r["reward"]),
        "advantage": lambda r: number(r["advantage"]),
        "status": lambda r: (r["status"] or "", str(r["task_id"])),
        "tokens": lambda r: r["tokens"],
        "seconds": lambda r: number(r["seconds"]),
    }[sort]
