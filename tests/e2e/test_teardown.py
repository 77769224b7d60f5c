"""Teardown: whatever way a run ends, nothing it started is left behind.

A debug run with --with-logview and a python-tool workflow (sandbox processes and temp folders)
ends normally, by an exception after the engine started, by SIGINT and by SIGTERM. While it runs,
every descendant process is recorded (pid + start time, so a reused pid is not mistaken for an
orphan); afterwards none may be alive, the engine's and the viewer's ports must be closed, and the
run's temporary folder must hold nothing astuner created.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import SEED_HEADER
from tests.e2e.conftest import LiveRun
from tests.e2e.tool_loop_workflow import RUN_CONFIG

pytestmark = pytest.mark.e2e

CONFIG = {"astuner": {**RUN_CONFIG["astuner"], "debug": {"rollout_only": True}}}
# one step: the signals arrive inside step 1's rollout, and a normal end needs no more
CONFIG["astuner"]["trainer_common"] = {"total_training_steps": 1, "val_before_train": False, "test_freq": 100}
BOOM = """
from astuner.task_judge.base_judge import BaseJudge

class Boom(BaseJudge):
    def __init__(self, config=None, **kwargs):  # astuner builds judges as cls(config=cfg)
        raise RuntimeError("judge set-up failed (injected)")

    def compute_reward(self, workflow_task, workflow_output):
        return 0.0, False
"""


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> set[tuple[int, int]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))):
            table[int(entry)] = st
    out, frontier = set(), {root}
    while frontier:
        children = {pid for pid, (ppid, _) in table.items() if ppid in frontier}
        out |= {(pid, table[pid][1]) for pid in children}
        frontier = children
    return out


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run(folder: Path, how: str) -> dict:
    conf = folder / "teardown.yaml"
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    if how == "exception":
        (folder / "boom.py").write_text(BOOM)
        config["astuner"]["task_judge"]["judge_protocol"] = f"{folder / 'boom.py'}->Boom"
    conf.write_text(yaml.safe_dump(config, sort_keys=False) + SEED_HEADER)
    tmp = folder / "tmp"
    tmp.mkdir()
    run = LiveRun(["--conf", str(conf), "--exp-dir", str(folder), "--with-logview"], folder, {"TMPDIR": str(tmp)})
    proc = run.proc
    seen: set[tuple[int, int]] = set()
    log = folder / "teardown" / "astuner.log"
    signalled = False
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        seen |= descendants(proc.pid)
        if how in ("sigint", "sigterm") and not signalled and log.is_file():
            if "phase rollout step 1" in log.read_text(errors="replace") and len(seen) > 2:
                time.sleep(1.0)  # inside the rollout: tool sandboxes may be running
                seen |= descendants(proc.pid)
                os.kill(proc.pid, signal.SIGINT if how == "sigint" else signal.SIGTERM)
                signalled = True
        time.sleep(0.1)
    run.wait(timeout=60)
    out = run.output
    ports = [int(p) for p in re.findall(r"(?:vLLM .* on|logview:) http://127\.0\.0\.1:(\d+)", out)]
    time.sleep(0.5)
    return {
        "code": proc.returncode,
        "out": out,
        "seen": seen,
        "orphans": [(pid, start) for pid, start in seen if (_stat(pid) or (0, None))[1] == start],
        "ports": ports,
        "open_ports": [p for p in ports if port_open(p)],
        "tmp_left": sorted(p.name for p in tmp.iterdir()),
    }


@pytest.mark.parametrize("how", ["normal", "exception", "sigint", "sigterm"])
def test_nothing_is_left_behind(tmp_path, smollm2_dir, how):
    r = run(tmp_path, how)
    expected = {"normal": 0, "exception": 1, "sigint": 130, "sigterm": 130}[how]
    assert r["code"] == expected, r["out"][-3000:]
    assert len(r["ports"]) == 2, r["out"][-3000:]  # the engine and the viewer were up
    assert len(r["seen"]) >= 2  # vLLM and logview (and its own children) were seen running
    assert r["orphans"] == [], r["out"][-2000:]
    assert r["open_ports"] == []
    assert [n for n in r["tmp_left"] if n.startswith("astuner")] == [], r["tmp_left"]
    if how == "exception":
        assert "astuner: error: the run failed: RuntimeError: judge set-up failed (injected)" in r["out"]
        assert "Traceback" not in r["out"]  # it is in astuner.log
