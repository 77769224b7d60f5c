"""Hand-over to a backbone's own environment: ``exec``, so Ctrl-C and SIGTERM reach the run that owns the children.

From ``.venv`` (no verl, no Trinity) ``--backbone=verl|trinity`` replaces itself with the same command
in ``.venv-verl`` / ``.venv-trinity``. The end-to-end cases run that for real with ``--with-ray``, signal
the process the user started (SIGINT, as Ctrl-C, and SIGTERM) while the backbone's launcher is
connected to the owned Ray head and its Ray actors run, and check: exit 130, no traceback on the
console, no process of the run left (every descendant seen, by pid and start time), the Ray head's
port closed.

When to signal: on this CPU machine neither backbone trains. verl waits for resources it never gets;
Trinity, told of a 2-GPU cluster so that its validator lets it start, runs its actors for about a
minute before verl's GPU check (inside Trinity's trainer) stops it. The signal goes once the
launcher's log says it joined Ray and one of its actors runs: a wide window in both, and the test
fails (rather than passes vacuously) if the run ended before it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from astuner.backbone.handover import BACKBONE_ENVS, find_backbone_python, installed_here
from tests.backbone.helpers import REPO, math_agent_yaml
from tests.e2e.conftest import LiveRun
from tests.e2e.test_teardown import _stat, descendants, port_open

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
RAY_SERVICES = ("ray::IDLE", "ray::DashboardA", "ray::RuntimeEnv")  # Ray's own; anything else is an actor


def test_hand_over_replaces_this_process_and_keeps_its_pid(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "config.yaml").write_text("astuner: {}\n")
    code = (
        "import os, sys; print(os.getpid(), flush=True)\n"
        "from astuner.backbone.handover import hand_over\n"
        f"sys.exit(hand_over(sys.executable, ['logview', {str(tmp_path / 'exp')!r}]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV
    )
    pid = int(proc.stdout.readline())
    url = re.search(r"logview of .*: (http://\S+)", proc.stdout.readline()).group(1)
    urllib.request.urlopen(url, timeout=10).close()  # serving (a Ctrl-C before that is not handled there)
    assert pid == proc.pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    assert cmdline[:4] == [sys.executable, "-m", "astuner", "logview"]
    proc.send_signal(signal.SIGINT)  # reaches the handed-over command itself
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in out


def test_a_hand_over_that_cannot_exec_is_one_line(capsys):
    from astuner.backbone.handover import hand_over

    assert hand_over("/no/such/python", ["--conf", "x.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("astuner: error: cannot hand over to /no/such/python: ") and err.count("\n") == 1


def experiment(folder: Path, backbone: str) -> Path:
    if backbone == "verl":
        extra = "actor_rollout_ref:\n  actor:\n    ppo_mini_batch_size: 2\n"
        return math_agent_yaml(folder, "builtin:smollm2-135m", 256, 1, extra=extra)
    extra = "trinity:\n  cluster:\n    node_num: 1\n    gpu_per_node: 2\n"  # lets Trinity's validator pass
    return math_agent_yaml(folder, "builtin:smollm2-135m", 1024, 2, extra=extra)


def names(pids: set[tuple[int, int]]) -> set[str]:
    out = set()
    for pid, _ in pids:
        try:
            out.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            pass
    return out


def still_running(seen: set[tuple[int, int]]) -> list[int]:
    """The pids of ``seen`` (pid, start time) that still run: a reused pid has another start time."""
    return sorted(pid for pid, start in seen if (_stat(pid) or (0, None))[1] == start)


def interrupt_after_hand_over(folder: Path, backbone: str, sig: signal.Signals) -> dict:
    """Run ``--backbone=<backbone> --with-ray`` from this Python, signal it while the backbone's actors run."""
    argv = ["--conf", str(experiment(folder, backbone)), f"--backbone={backbone}", "--with-ray"]
    run = LiveRun([*argv, "--exp-dir", str(folder / "records")], folder, {"PYTHONPATH": str(REPO)})
    log = folder / "records" / "exp" / f"{backbone}.log"
    seen: set[tuple[int, int]] = set()
    state = "never signalled: the run ended first"
    deadline = time.monotonic() + 300
    while run.running() and time.monotonic() < deadline:
        seen |= descendants(run.pid)
        joined = log.is_file() and "Connected to Ray cluster" in log.read_text(errors="replace")
        if joined and any(n.startswith("ray::") and n not in RAY_SERVICES for n in names(seen)):
            seen |= descendants(run.pid)
            state = Path(f"/proc/{run.pid}/cmdline").read_text().split("\0")[0]  # the handed-over Python
            os.kill(run.pid, sig)
            break
        time.sleep(0.2)
    while run.running() and time.monotonic() < deadline + 120:
        seen |= descendants(run.pid)  # teardown may still start something; it must be gone too
        time.sleep(0.2)
    code = run.wait(timeout=60)
    give_up = time.monotonic() + (30 if sig == signal.SIGKILL else 0.5)  # SIGKILL: the death signal's turn
    while time.monotonic() < give_up and (sig != signal.SIGKILL or still_running(seen)):
        time.sleep(0.5)
    out = run.output
    port = re.search(r"Ray head \(pid \d+\) at 127\.0\.0\.1:(\d+)", out)
    return {
        "code": code,
        "out": out,
        "state": state,
        "seen": seen,
        "alive": still_running(seen),
        "port": int(port.group(1)) if port else None,
    }


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("backbone", "sig"),
    [
        ("verl", signal.SIGINT),
        ("verl", signal.SIGTERM),
        # SIGKILL runs no teardown: the death signal stops the launcher and the Ray head (the handed-over
        # run is their parent: with a waiting parent instead of exec, all of them would be left running)
        ("verl", signal.SIGKILL),
        ("trinity", signal.SIGINT),
        ("trinity", signal.SIGTERM),
    ],
    ids=["verl-sigint", "verl-sigterm", "verl-sigkill", "trinity-sigint", "trinity-sigterm"],
)
def test_a_signal_after_hand_over_leaves_nothing_behind(tmp_path, backbone, sig):
    env = BACKBONE_ENVS[backbone]
    if installed_here(env.package):
        pytest.skip(f"{env.package} is installed in this Python: nothing is handed over (run this from .venv)")
    python = find_backbone_python(env)
    assert python, f"no {env.package} environment: run scripts/setup_env.sh (it builds .venv-{env.venv})"
    r = interrupt_after_hand_over(tmp_path, backbone, sig)
    assert r["state"] == python, f"{r['state']}\n{r['out'][-3000:]}"  # signalled the handed-over run, same pid
    assert f"handing over to {python}" in r["out"]
    assert "Traceback" not in r["out"], r["out"][-3000:]
    if sig == signal.SIGKILL:
        assert r["code"] == -signal.SIGKILL
    else:
        assert r["code"] == 130 and "interrupted; records kept" in r["out"], r["out"][-3000:]
    assert len(r["seen"]) >= 8  # the launcher, the Ray head's processes and Ray workers ran
    assert r["alive"] == [], f"left running: {r['alive']}\n{r['out'][-2000:]}"
    assert r["port"] is not None and not port_open(r["port"]), "the Ray head's port is still open"
