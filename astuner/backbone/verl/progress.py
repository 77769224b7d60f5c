"""Progress of a verl run, read from its console log (``verl.log``): one line per training step.

Why from the log: verl's trainer runs in its own process (and Ray actors); its console logger prints
each step's metrics as ``step:N - key:value - key:value ...``. Following that file is the narrowest
way to show progress without hooking into verl's trainer (``ray_head.run_on_ray`` follows the log).
The same parser serves ``scripts/gpu/step_times.py`` (step-time split of a finished run).
"""

from __future__ import annotations

import re

STEP_LINE = re.compile(r"step:(\d+) - (.*)")
# verl 0.9.1's timers (``marked_timer`` names in its trainers) shown in the progress line.
PHASES = {
    "gen": "timing_s/gen",
    "old logprob": "timing_s/old_log_prob",
    "update": "timing_s/update_actor",
    "weight sync": "timing_s/update_weights",
}
REWARD = "critic/score/mean"


def parse_step_line(line: str) -> tuple[int, dict[str, float]] | None:
    """``(step, numeric metrics)`` of a verl console metrics line, else None."""
    m = STEP_LINE.search(line)
    if not m:
        return None
    metrics: dict[str, float] = {}
    for part in m.group(2).split(" - "):
        key, _, value = part.rpartition(":")
        try:
            metrics[key.strip()] = float(value)
        except ValueError:
            continue
    return int(m.group(1)), metrics


def describe(step: int, metrics: dict[str, float]) -> str | None:
    """A one-line summary of a training step or a validation, or None for other metric lines."""
    if "timing_s/step" in metrics:
        phases = ", ".join(f"{name} {metrics[key]:.1f}s" for name, key in PHASES.items() if key in metrics)
        reward = f"reward {metrics[REWARD]:.3f} | " if REWARD in metrics else ""
        return f"verl step {step}: {reward}{metrics['timing_s/step']:.1f}s ({phases})"
    val = {k: v for k, v in metrics.items() if k.startswith("val-core/") and "/mean@" in k}
    if val:
        shown = ", ".join(f"{k.removeprefix('val-core/')} {v:.3f}" for k, v in val.items())
        return f"verl validation at step {step}: {shown}"
    return None


def progress_line(line: str) -> str | None:
    """What astuner logs for a line of verl's console output (None for most lines)."""
    parsed = parse_step_line(line)
    return describe(*parsed) if parsed else None
