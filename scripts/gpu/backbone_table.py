"""The three-backbone table: one run's summary from its records, or the table and figure of several.

    python3 scripts/gpu/backbone_table.py --json OUT.json NAME=RECORDS [--started-at T] [--gpu-samples CSV]
    python3 scripts/gpu/backbone_table.py --table debug.json verl.json trinity.json [--plot docs/x.png]

Why from the trajectories: every backbone records each episode the same way (astuner's own rollout
code runs inside verl's and Trinity's workers), with wall-clock times of every LLM call. So reward,
success and tool use per step, validation before and after, and the step period (first call of one
step to the first call of the next) and its rollout part (first to last call of a step) are measured
alike on all three; start-up is the first call's time minus the launch time (``--started-at``).
Each backbone's own timers (debug ``metrics.jsonl``, verl's ``timing_s/*``, Trinity's ``time/*`` and
``timing_s/*`` lines) are added as they are, for the split of the rest. Peak GPU memory comes from
``nvidia-smi`` samples taken during the run (``--gpu-samples``).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from astuner.rollout.metrics import tool_use_metrics  # noqa: E402
from astuner.rollout.runner import Episode  # noqa: E402

STEP_FILE = re.compile(r"^(?:(?P<prefix>[a-z]+?)_)?(?P<val>val_)?step_(?P<step>\d+)(?:\.\d+)?\.jsonl$")
LOG_STEP = re.compile(r"Step (\d+): (\{.*\})\s*$")
TIMER = re.compile(r"^(timing_s/|time/|.*_seconds$)")


def _episode(row: dict) -> Episode:
    keys = ("episode_id", "task_id", "repeat_index", "status", "reward", "is_success", "metrics")
    return Episode(**{k: row.get(k) for k in keys if k in row})


def _step_summary(rows: list[dict]) -> dict:
    episodes = [_episode(r) for r in rows]
    ok = [e for e in episodes if e.status == "ok" and e.reward is not None]
    starts = [c["t_start"] for r in rows for c in r.get("calls") or [] if c.get("t_start")]
    ends = [c["t_end"] for r in rows for c in r.get("calls") or [] if c.get("t_end")]
    return {
        "episodes": len(episodes),
        "failed": len(episodes) - len(ok),
        "reward": statistics.fmean(e.reward for e in ok) if ok else float("nan"),
        "success": statistics.fmean(bool(e.is_success) for e in ok) if ok else float("nan"),
        **tool_use_metrics(episodes),
        "t_first": min(starts, default=float("nan")),
        "t_last": max(ends, default=float("nan")),
    }


def read_steps(records: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """Training and validation steps of a run: step -> summary of its episodes."""
    grouped: dict[tuple[bool, int], list[dict]] = defaultdict(list)
    for path in sorted((records / "trajectories").glob("*.jsonl")):
        m = STEP_FILE.match(path.name)
        if not m:
            continue
        is_val = bool(m.group("val")) or m.group("prefix") == "val"
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                grouped[(is_val, int(m.group("step")))].append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
    train = {s: _step_summary(r) for (v, s), r in sorted(grouped.items()) if not v}
    val = {s: _step_summary(r) for (v, s), r in sorted(grouped.items()) if v}
    return train, val


def backbone_timers(records: Path) -> dict[str, float]:
    """Mean of each timer the backbone itself reported per training step."""
    values: dict[str, list[float]] = defaultdict(list)
    metrics = records / "metrics.jsonl"
    rows = []
    if metrics.is_file():  # the debug backbone
        rows += [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    verl = records / "verl" / "metrics.jsonl"
    if verl.is_file():
        rows += [json.loads(x).get("data", {}) for x in verl.read_text().splitlines() if x.startswith("{")]
    for log in sorted(records.rglob("*.log")):  # Trinity's monitors: "Step N: {...}"
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            m = LOG_STEP.search(line)
            if m:
                try:
                    rows.append(ast.literal_eval(m.group(2)))
                except (ValueError, SyntaxError):
                    continue
    for row in rows:
        if row.get("kind", "train") not in ("train", None) or "val" in str(row.get("kind", "")):
            continue
        for k, v in row.items():
            if TIMER.match(k) and isinstance(v, (int, float)):
                values[k].append(float(v))
    return {k: statistics.fmean(v) for k, v in sorted(values.items())}


def peak_gpu_mib(csv: Path | None) -> float | None:
    """Largest ``memory.used`` sample (MiB) of the whole GPU during the run."""
    if csv is None or not csv.is_file():
        return None
    used = []
    for line in csv.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[1].replace(".", "").isdigit():
            used.append(float(parts[1]))
    return max(used) if used else None


def summarize(name: str, records: Path, started_at: float | None, gpu_samples: Path | None) -> dict:
    train, val = read_steps(records)
    firsts = [train[s]["t_first"] for s in sorted(train)]
    periods = [b - a for a, b in zip(firsts, firsts[1:], strict=False)]
    first_call = min([x["t_first"] for x in (*train.values(), *val.values())], default=None)
    return {
        "name": name,
        "records": str(records),
        "startup_s": first_call - started_at if first_call and started_at else None,
        "step_period_s": statistics.fmean(periods) if periods else None,
        "rollout_s": statistics.fmean(t["t_last"] - t["t_first"] for t in train.values()) if train else None,
        "peak_gpu_mib": peak_gpu_mib(gpu_samples),
        "timers": backbone_timers(records),
        "train": {str(k): v for k, v in train.items()},
        "val": {str(k): v for k, v in val.items()},
    }


def _at(steps: dict[str, dict], step: int, key: str) -> str:
    row = steps.get(str(step))
    return f"{row[key]:.3f}" if row and row[key] == row[key] else "–"


def table(summaries: list[dict]) -> str:
    lines = [
        "| backbone | start-up | step (rollout) | reward step 1 / 5 / 10 / 20 | validation before → after "
        "| tool use step 1 → 20 | peak GPU memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        train, val = s["train"], s["val"]
        last = max((int(k) for k in train), default=0)
        vsteps = sorted(int(k) for k in val)
        v = " → ".join(_at(val, k, "reward") for k in vsteps[:1] + vsteps[-1:]) if vsteps else "–"
        rewards = " / ".join(_at(train, k, "reward") for k in (1, 5, 10, 20))
        tool = f"{_at(train, 1, 'tool_use_rate')} → {_at(train, last, 'tool_use_rate')}"
        period = f"{s['step_period_s']:.1f} s ({s['rollout_s']:.1f} s)" if s["step_period_s"] else "–"
        start = f"{s['startup_s']:.0f} s" if s["startup_s"] else "–"
        peak = f"{s['peak_gpu_mib'] / 1024:.1f} GiB" if s["peak_gpu_mib"] else "–"
        lines.append(f"| {s['name']} | {start} | {period} | {rewards} | {v} | {tool} | {peak} |")
    return "\n".join(lines)


def plot(summaries: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for s in summaries:
        steps = sorted(int(k) for k in s["train"])
        ax.plot(steps, [s["train"][str(k)]["reward"] for k in steps], marker="o", ms=3, label=s["name"])
    ax.set_xlabel("training step")
    ax.set_ylabel("mean episode reward (train)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="NAME=RECORDS (summarize one run)")
    parser.add_argument("--json", type=Path, help="write the run's summary here")
    parser.add_argument("--started-at", type=float, help="the run's launch time (seconds since the epoch)")
    parser.add_argument("--gpu-samples", type=Path, help="nvidia-smi samples taken during the run (CSV)")
    parser.add_argument("--table", nargs="+", type=Path, help="summaries to put in one table")
    parser.add_argument("--plot", type=Path, help="with --table: the reward curves, as a PNG")
    args = parser.parse_args()
    if args.table:
        summaries = [json.loads(p.read_text()) for p in args.table]
        print(table(summaries))
        if args.plot:
            plot(summaries, args.plot)
        return 0
    for run in args.runs:
        name, _, records = run.partition("=")
        summary = summarize(name, Path(records), args.started_at, args.gpu_samples)
        if args.json:
            args.json.write_text(json.dumps(summary, indent=1))
        print(table([summary]))
        print(json.dumps(summary["timers"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
