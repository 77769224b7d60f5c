"""ChildProcess, the one owner of child processes: its own group, the death tie, readiness, stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from astuner.processes import TIE, ChildProcess, ProcessStartError, free_port, port_answers


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie (exited, waiting to be reaped by whoever started it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.1)
    return False


# a child that starts a grandchild (in the same group), writes its pid, then serves a port
SERVER = textwrap.dedent(
    """
    import socket, subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print("grandchild", grandchild.pid, flush=True)
    time.sleep(0.5)
    s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
    time.sleep(300)
    """
)


def test_child_runs_in_its_own_group_and_close_stops_the_whole_group(tmp_path):
    port, log = free_port(), tmp_path / "child.log"
    child = ChildProcess(
        [sys.executable, "-c", SERVER, str(port)], "a test server", log, ready=lambda: port_answers("127.0.0.1", port)
    )
    with child:
        assert port_answers("127.0.0.1", port)
        assert os.getpgid(child.pid) == child.pid and os.getsid(child.pid) == child.pid
        grandchild = int(log.read_text().split()[1])
        assert os.getpgid(grandchild) == child.pid
        # the tie is an exec, not a wrapper process: the pid we hold is the program itself
        assert open(f"/proc/{child.pid}/cmdline").read().split("\0")[:2] == [sys.executable, "-c"]
    assert gone(child.pid) and wait_gone(grandchild)
    assert not port_answers("127.0.0.1", port)
    child.close()  # twice is fine


def test_a_child_that_exits_while_starting_is_one_line_with_the_logs_reason(tmp_path):
    script = "import sys; print('loading'); print('ValueError: no model at /x'); print('bye'); sys.exit(3)"
    child = ChildProcess([sys.executable, "-c", script], "vLLM", tmp_path / "v.log", ready=lambda: False)
    with pytest.raises(ProcessStartError) as exc:
        child.start()
    assert (
        str(exc.value)
        == f"vLLM exited with code 3 while starting; {tmp_path / 'v.log'} says: ValueError: no model at /x"
    )
    assert exc.value.what == "vLLM" and exc.value.log_tail.splitlines()[-1] == "bye"


def test_a_child_not_ready_in_time_is_stopped_and_names_the_key(tmp_path):
    child = ChildProcess(
        [sys.executable, "-c", "import time; print('warming up', flush=True); time.sleep(300)"],
        "the env service",
        tmp_path / "e.log",
        ready=lambda: False,
        waiting_for="GET /health",
        startup_timeout=1.0,
        timeout_key="astuner.x.startup_timeout",
    )
    with pytest.raises(ProcessStartError, match=r"not ready within 1s \(waiting for GET /health; astuner.x.startup"):
        child.start()
    assert wait_gone(child.pid)


def test_a_missing_program_says_so(tmp_path):
    with pytest.raises(ProcessStartError, match="^x cannot be started: 'no-such-program-here' is not found on PATH$"):
        ChildProcess(["no-such-program-here"], "x", tmp_path / "x.log").start()
    with pytest.raises(ProcessStartError, match="'./missing.sh' is not an executable file"):
        ChildProcess(["./missing.sh"], "x", tmp_path / "x.log", cwd=tmp_path).start()


def test_a_relative_program_runs_from_cwd(tmp_path):
    (tmp_path / "hello.sh").write_text("#!/bin/sh\necho hello from $(pwd)\n")
    (tmp_path / "hello.sh").chmod(0o755)
    child = ChildProcess(["./hello.sh"], "hello", tmp_path / "h.log", cwd=tmp_path).start()
    child.proc.wait(timeout=10)
    assert (tmp_path / "h.log").read_text() == f"hello from {tmp_path}\n"


PARENT = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from astuner.processes import ChildProcess
    threading.Thread(target=time.sleep, args=(300,), daemon=True).start()  # a parent with threads
    child = ChildProcess(["sleep", "300"], "sleeper", Path(sys.argv[1])).start()
    print(child.pid, flush=True)
    time.sleep(300)
    """
)


def test_a_child_dies_when_its_parent_is_sigkilled(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "s.log")], stdout=subprocess.PIPE, env=env)
    child = int(parent.stdout.readline())
    assert not gone(child)
    parent.kill()
    parent.wait()
    assert wait_gone(child, 10), "the child outlived its SIGKILLed parent"


def test_the_tie_refuses_to_run_once_the_parent_is_gone_and_restores_sigpipe(tmp_path):
    # started on behalf of a parent that is not ours (pid 1): the parent died before the tie was made
    late = subprocess.run([sys.executable, "-I", "-S", "-c", TIE, "1", "/bin/echo", "ran"], capture_output=True)
    assert late.returncode == 1 and late.stdout == b""
    # Python ignores SIGPIPE; a non-Python child must get the default back (as subprocess's restore_signals)
    ChildProcess(["cat", "/proc/self/status"], "cat", tmp_path / "c.log").start().proc.wait(timeout=10)
    ignored = int(
        next(ln for ln in (tmp_path / "c.log").read_text().splitlines() if ln.startswith("SigIgn")).split()[1], 16
    )
    assert not ignored & (1 << (signal.SIGPIPE - 1))


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"
    )
    log = tmp_path / "i.log"
    child = ChildProcess(
        [sys.executable, "-c", script], "stubborn", log, ready=lambda: log.read_text() != "", grace=1.0
    )
    child.start()
    started = time.monotonic()
    child.close()
    assert gone(child.pid) and 1.0 <= time.monotonic() - started < 8
    assert child.poll() == -signal.SIGKILL


def test_a_second_interrupt_during_the_grace_period_kills_the_group(tmp_path):
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"
    )
    log = tmp_path / "i.log"
    child = ChildProcess([sys.executable, "-c", script], "stubborn", log, ready=lambda: log.read_text() != "", grace=60)
    child.start()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            child.close()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 5 and wait_gone(child.pid, 5)
