"""Child processes astuner owns (vLLM, logview, env servers, Ray heads): start, tie, stop by PID.

The rules every owner follows: start the child in its own session (so its whole process group
can be signalled without touching anything else), tie it to us with ``PR_SET_PDEATHSIG`` (so it
dies even when astuner is SIGKILLed), and stop it with ``stop_process_group`` on every exit
path. Nothing here ever kills a process it was not given the PID of.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import time
from pathlib import Path

from loguru import logger

PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """``preexec_fn`` for a child: SIGTERM it when the process that started it dies (Linux)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def log_tail(path: Path, n: int = 15) -> str:
    """The last ``n`` lines of a child's log, for an error message (``(no log)`` if unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_process_group(pid: int, what: str, grace: float = 15.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL whatever is left after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            logger.info(f"stopped {what} (pid {pid})")
            return
        # reap our direct child if it exited, so the group can disappear
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    logger.warning(f"{what} (pid {pid}) ignored SIGTERM for {grace:.0f}s and was killed")


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
