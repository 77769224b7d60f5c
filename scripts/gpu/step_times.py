"""Per-phase step times of finished verl runs, from a console log or the ``file`` logger's JSONL.

    PYTHONPATH=. python scripts/gpu/step_times.py NAME=LOG [NAME=LOG ...]

One line per run: the number of training steps, the mean of verl's timers over them (generation,
old-logprob recompute, actor update, weight sync, whole step) and the reward per step; with two runs,
the ratio of the second's mean step time to the first's. Console lines are parsed by
``astuner.backbone.verl.progress`` (the parser astuner's live progress uses).
"""

from __future__ import annotations

import json
import sys
from statistics import mean

from astuner.backbone.verl.progress import PHASES, REWARD, parse_step_line


def training_steps(path: str) -> list[dict[str, float]]:
    rows = []
    for line in open(path, encoding="utf-8", errors="replace"):
        if line.startswith("{"):  # verl's file logger: {"step": N, "data": {...}}
            try:
                data = json.loads(line).get("data", {})
            except json.JSONDecodeError:
                continue
            metrics = {k: float(v) for k, v in data.items() if isinstance(v, (int, float))}
        else:
            parsed = parse_step_line(line)
            metrics = parsed[1] if parsed else {}
        if "timing_s/step" in metrics:
            rows.append(metrics)
    return rows


def summary(name: str, rows: list[dict[str, float]]) -> float:
    if not rows:
        print(f"{name}: no training step found")
        return float("nan")
    phases = ", ".join(f"{p} {mean(r.get(k, 0.0) for r in rows):.1f}s" for p, k in PHASES.items())
    step = mean(r["timing_s/step"] for r in rows)
    rewards = " ".join(f"{r.get(REWARD, float('nan')):.3f}" for r in rows)
    print(f"{name}: {len(rows)} steps, mean step {step:.1f}s ({phases}); reward per step {rewards}")
    return step


def main() -> None:
    runs = [arg.split("=", 1) for arg in sys.argv[1:]]
    times = [summary(name, training_steps(path)) for name, path in runs]
    if len(times) == 2:
        print(f"step-time ratio {runs[1][0]} / {runs[0][0]}: {times[1] / times[0]:.2f}")


if __name__ == "__main__":
    main()
