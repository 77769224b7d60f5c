"""The main job's learning curve against a stored reference band: does a fresh run still learn as it did?

    .venv/bin/python bench/learning_curve.py                      # run the main job (~20 min on 2 cores), check it
    .venv/bin/python bench/learning_curve.py --records DIR        # check a finished run (e.g. the quickstart's)
    .venv/bin/python bench/learning_curve.py --records DIR --plot docs/learning_curve.png

It runs exactly the main job (``scripts/quickstart.sh``'s command: the main job's YAML on the debug
backbone) into a fresh records folder, then reads the greedy validation rows of its ``metrics.jsonl``
(success, reward, tool use at each validation step) and prints them next to the band stored in
``bench/learning_curve_reference.json`` (measured runs of the same command, with the machine and date
they ran on). Exit code 1 when any checked value falls below its band's lower edge: learning
regressed (a change to the trainer, the algorithm, the judge or the prompt broke what used to work).
A value above the band is reported, not failed: faster learning is good news, but the band should
then be re-measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MAIN_JOB = REPO / "tutorial/example_math_agent/math_agent_cpu.yaml"
REFERENCE = REPO / "bench/learning_curve_reference.json"
CHECKED = {"success": "val/success_rate", "reward": "val/reward_mean"}


def validation_rows(records: Path) -> dict[int, dict[str, float]]:
    """Step -> that step's greedy validation metrics, from a run's ``metrics.jsonl``."""
    path = records / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"learning_curve: {path} does not exist (is {records} a finished run's records folder?)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(r["step"]): r for r in rows if r.get("phase") == "validation"}


def check(rows: dict[int, dict[str, float]], band: dict[str, dict[str, list[float]]]) -> tuple[list[str], bool]:
    """Lines of the report and whether every banded value reached its band's lower edge."""
    lines = [f"{'step':>4}  {'success':>8} {'band':>13}  {'reward':>7} {'band':>13}  {'tool use':>8}  verdict"]
    ok = True
    for step_text, limits in sorted(band.items(), key=lambda kv: int(kv[0])):
        step = int(step_text)
        row = rows.get(step)
        if row is None:
            lines.append(f"{step:>4}  no validation at this step: the run ended early or validates elsewhere")
            ok = False
            continue
        cells, verdicts = [], []
        for name, key in CHECKED.items():
            lo, hi = limits[name]
            value = float(row[key])
            cells.append(f"{value:>7.3f} [{lo:.2f}, {hi:.2f}]")
            if value < lo:
                verdicts.append(f"{name} below band")
                ok = False
            elif value > hi:
                verdicts.append(f"{name} above band")
        tool = float(row.get("val/tool_use_rate", float("nan")))
        lines.append(f"{step:>4}  {cells[0]:>22}  {cells[1]:>21}  {tool:>8.0%}  {', '.join(verdicts) or 'in band'}")
    return lines, ok


def run_main_job(exp_dir: Path) -> tuple[Path, float]:
    """The quickstart's command with its records under ``exp_dir``; returns the run's records folder
    (``exp_dir/<experiment name>``, as astuner names it) and the wall time in seconds."""
    from astuner.config import load_config

    records = exp_dir / load_config(MAIN_JOB, [], cwd=REPO).experiment_name
    cmd = [sys.executable, "-m", "astuner", "--conf", str(MAIN_JOB), "--backbone=debug", "--exp-dir", str(exp_dir)]
    print("running:", " ".join(cmd), flush=True)
    start = time.monotonic()
    code = subprocess.call(cmd, cwd=REPO)
    if code != 0:
        raise SystemExit(f"learning_curve: the main job exited with {code}; its log is in {records}")
    return records, time.monotonic() - start


def plot(rows: dict[int, dict[str, float]], band: dict[str, dict[str, list[float]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, key, color in (("success", CHECKED["success"], "C2"), ("reward", CHECKED["reward"], "C0")):
        ax.plot(steps, [rows[s][key] for s in steps], marker="o", color=color, label=f"validation {name} (this run)")
        banded = sorted(int(s) for s in band)
        ax.fill_between(
            banded,
            [band[str(s)][name][0] for s in banded],
            [band[str(s)][name][1] for s in banded],
            color=color,
            alpha=0.15,
            label=f"{name} reference band",
        )
    tool = [rows[s].get("val/tool_use_rate", float("nan")) for s in steps]
    ax.plot(steps, tool, ls="--", color="C1", label="tool-use rate (this run)")
    ax.set_xlabel("training step")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("main job: greedy validation (32 tasks)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=Path, help="check this finished run instead of running the main job")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="the band (default: %(default)s)")
    parser.add_argument("--plot", type=Path, help="write the curve and the band as a PNG")
    args = parser.parse_args()
    reference = json.loads(args.reference.read_text())
    records = args.records
    if records is None:
        records, wall = run_main_job(Path(tempfile.mkdtemp(prefix="astuner-learning-curve-")))
        print(f"main job finished in {wall / 60:.1f} min; records in {records}")
    rows = validation_rows(records)
    print(f"reference: {reference['runs']} on {reference['machine']} ({reference['measured']})")
    lines, ok = check(rows, reference["band"])
    print("\n".join(lines))
    if args.plot:
        plot(rows, reference["band"], args.plot)
        print(f"figure: {args.plot}")
    print("learning curve: " + ("in or above the reference band" if ok else "BELOW the reference band"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
