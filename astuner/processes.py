"""Child processes astuner owns (vLLM, logview, env servers, Ray heads, backbone launchers): one owner.

``ChildProcess`` is the only place that starts one. The rules it keeps for every child:

- its own session, so its whole process group can be signalled without touching anything else;
- tied to us by the parent-death signal (``PR_SET_PDEATHSIG``), so it dies even when astuner is
  SIGKILLed. The tie is made by a tiny exec trampoline (``python -I -S -c TIE ppid argv...``, which
  sets the signal and ``exec``s the child), not by ``preexec_fn``: code run between ``fork`` and
  ``exec`` may deadlock when the parent has threads (loguru, httpx, Ray clients do). The trampoline
  also checks that its parent is still the one that started it (closing the race where astuner died
  before the tie was made) and resets SIGPIPE/SIGXFSZ, which Python ignores and ``exec`` would keep.
  Not util-linux's ``setpriv --pdeathsig``: it has no such check and is absent on non-Debian systems;
- a readiness check polled until a deadline, failing fast (with the log's reason) if the child exits;
- ``close()`` stops the group by PID: SIGTERM, a grace period, SIGKILL. Nothing here ever signals a
  process it was not given the PID of.

A child that cannot start raises ``ProcessStartError``, one type for every owner, which the CLI
prints as one line (exit 1).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from loguru import logger

# Run as `python -I -S -c TIE <parent pid> <program> <args...>`: isolated (no PYTHONPATH, no site) so
# that it starts in milliseconds and nothing of the child's environment can change what it does.
TIE = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(1)  # the parent died before the tie was made: nobody would stop this child
for s in (signal.SIGPIPE, signal.SIGXFSZ):
    signal.signal(s, signal.SIG_DFL)
try:
    os.execv(sys.argv[2], sys.argv[2:])
except OSError as exc:
    print(f"cannot run {sys.argv[2]}: {exc}", file=sys.stderr)
    os._exit(127)
"""


class ProcessStartError(RuntimeError):
    """A child astuner owns could not be started or did not become ready.

    ``str()`` is one line: what, why, and (when the child wrote a log) the log's path and the line
    of it that says why (``failure_line``).

    Attributes:
        what: the child, as the user knows it ("vLLM", "the Ray head", ...).
        cause: what went wrong ("exited with code 3 while starting").
        log_path: the child's log, or None.
        log_tail: the log's last lines ("" without a log).
    """

    def __init__(self, what: str, cause: str, log_path: Path | None = None):
        self.what, self.cause, self.log_path = what, cause, log_path
        self.log_tail = log_tail(log_path) if log_path is not None else ""
        where = f"; {log_path} says: {failure_line(log_path)}" if log_path is not None else ""
        super().__init__(f"{what} {cause}{where}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_answers(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (a readiness check)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def log_tail(path: Path, n: int = 15) -> str:
    """The last ``n`` lines of a child's log, for an error message (``(no log)`` if unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


ERROR_LINE = re.compile(r"\b\w*(Error|Exception)\b:")


def failure_line(log_path: Path, window: int = 400) -> str:
    """The line of a failed child's log that says why: the last ``...Error:`` line near the end, else the last line.

    Why not the last line: Ray-based trainers keep logging from other actors after the one that failed.
    """
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines()[-window:] if ln.strip()]
    except OSError:
        return "(no log)"
    errors = [ln for ln in lines if ERROR_LINE.search(ln)]
    return (errors or lines or ["(empty log)"])[-1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_process_group(pid: int, what: str, grace: float = 15.0, reap: Callable[[], object] | None = None) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL whatever is left after ``grace`` seconds.

    Args:
        reap: collects the leader once it exited (its ``Popen.poll``), so the group can disappear;
            default ``waitpid``, which is right only for a child no ``Popen`` object waits for.

    A second Ctrl-C (or SIGTERM) during the grace period SIGKILLs the group before it propagates:
    an impatient user still leaves nothing running.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                logger.info(f"stopped {what} (pid {pid})")
                return
            if reap is not None:
                reap()
            else:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        raise
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    logger.warning(f"{what} (pid {pid}) ignored SIGTERM for {grace:.0f}s and was killed")


def _find_program(name: str, cwd: Path | None, env: dict[str, str] | None) -> str | None:
    """The executable ``name`` names, as ``Popen`` would find it: relative to ``cwd``, or on the child's PATH."""
    if os.sep in name:
        path = Path(cwd or ".") / name  # an absolute name stays as it is
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(name, path=(env if env is not None else os.environ).get("PATH", os.defpath))


class ChildProcess:
    """Owner of one child process: start, wait until ready, stop its whole process group.

    Args:
        argv: the command; ``argv[0]`` is looked up as ``Popen`` would (relative to ``cwd``, or on PATH).
        what: the child's name in messages ("vLLM", "the Ray head").
        key: the config key that holds the command, named in every error (after ``what``).
        log_path: the child's stdout and stderr (appended to).
        env: its environment (default: ours).
        cwd: its working directory (default: ours).
        ready: polled until it returns True; None: the child counts as ready once started.
        waiting_for: what ``ready`` waits for, for the timeout message ("GET http://.../health").
        startup_timeout: seconds ``ready`` may take.
        timeout_key: the config key that sets ``startup_timeout``, named in the timeout message.
        grace: seconds between SIGTERM and SIGKILL on ``close()``.
        stop_leader_first: ``close()`` sends SIGTERM to the leader alone and waits (``grace``) for it
            to stop its own children in order, then stops whatever of the group is left. For a
            supervisor such as ``ray start --block``: signalled together with the GCS it supervises,
            it waits 30 s for the dead GCS before it stops.
        die_with_parent: tie the child to us (off only for a server kept alive for a later run). Linux
            sends the signal when the *thread* that started the child ends, so start owned children
            from a thread that lives as long as they do (the main thread).
        announce: the child's stdout goes to a pipe (``stdout``) and only its stderr to the log.
        poll_interval: seconds between readiness checks.

    Raises:
        ProcessStartError: from ``start()``: the program is missing, exits while starting, or is not
            ready in time (the child is stopped before the error propagates).

    Example:
        >>> with ChildProcess([sys.executable, "-m", "http.server", "8123"], "a file server", log,
        ...                   ready=lambda: port_answers("127.0.0.1", 8123)) as child:  # doctest: +SKIP
        ...     fetch("http://127.0.0.1:8123/")
    """

    def __init__(
        self,
        argv: list[str],
        what: str,
        log_path: Path,
        *,
        key: str = "",
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready: Callable[[], bool] | None = None,
        waiting_for: str = "it to answer",
        startup_timeout: float = 120.0,
        timeout_key: str = "",
        grace: float = 15.0,
        stop_leader_first: bool = False,
        die_with_parent: bool = True,
        announce: bool = False,
        poll_interval: float = 0.2,
    ):
        self.argv, self.what, self.log_path, self.env, self.cwd = list(argv), what, log_path, env, cwd
        self.ready, self.waiting_for, self.startup_timeout = ready, waiting_for, startup_timeout
        self.timeout_key, self.grace, self.die_with_parent = timeout_key, grace, die_with_parent
        self.stop_leader_first = stop_leader_first
        self.failing = f"{what} ({key})" if key else what  # who failed, as errors say it
        self.announce, self.poll_interval = announce, poll_interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.closed = False

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def stdout(self) -> IO[bytes] | None:
        """The child's stdout pipe (``announce=True`` only)."""
        return None if self.proc is None else self.proc.stdout

    def start(self) -> ChildProcess:
        """Start the child and wait until it is ready (see the class for what raises)."""
        program = _find_program(self.argv[0], self.cwd, self.env)
        if program is None:
            where = "is not an executable file" if os.sep in self.argv[0] else "is not found on PATH"
            raise ProcessStartError(self.failing, f"cannot be started: {self.argv[0]!r} {where}")
        argv = [program, *self.argv[1:]]
        if self.die_with_parent:
            argv = [sys.executable, "-I", "-S", "-c", TIE, str(os.getpid()), *argv]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logger.debug(f"starting {self.what}: {shlex.join(self.argv)} (log: {self.log_path})")
        with self.log_path.open("ab") as log:
            try:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE if self.announce else log,
                    stderr=log if self.announce else subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessStartError(self.failing, f"cannot be started: {exc}") from None
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_ready(self) -> None:
        if self.ready is None:
            return
        assert self.proc is not None
        start = time.monotonic()
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ProcessStartError(self.failing, f"exited with code {code} while starting", self.log_path)
            if self.ready():
                logger.info(f"{self.what} ready in {time.monotonic() - start:.1f}s (pid {self.pid})")
                return
            if time.monotonic() - start >= self.startup_timeout:
                key = f"; {self.timeout_key}" if self.timeout_key else ""
                raise ProcessStartError(
                    self.failing,
                    f"was not ready within {self.startup_timeout:g}s (waiting for {self.waiting_for}{key})",
                    self.log_path,
                )
            time.sleep(self.poll_interval)

    def poll(self) -> int | None:
        """The child's exit code, or None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def close(self) -> None:
        """Stop the child's process group (whatever of it still runs); safe to call twice."""
        if self.proc is None or self.closed:
            return
        self.closed = True
        grace = self.grace
        if self.stop_leader_first and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
                logger.info(f"stopped {self.what} (pid {self.proc.pid})")
                grace = 5.0  # the leader stopped what it supervises; only stragglers are left
            except subprocess.TimeoutExpired:
                grace = 1.0  # it had its time: the group is killed after a last SIGTERM
            except KeyboardInterrupt:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                raise
        # the group, even when its leader exited: what it started may still run
        stop_process_group(self.proc.pid, self.what, grace, reap=self.proc.poll)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ChildProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class LogFollower:
    """Reads the lines a child appends to its log from now on (a partial last line waits for its end).

    Why from the current end: a resumed run appends to the same log, and what the earlier run wrote
    there must not be reported again. Bytes, not text, so the offset is exact whatever the encoding.
    """

    def __init__(self, path: Path):
        self.path, self.partial = path, b""
        try:
            self.offset = path.stat().st_size
        except OSError:
            self.offset = 0

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines]
