"""The viewer as a child process of a run (``--with-logview``).

A child, not a thread: its HTTP work never competes with the rollout's event loop or the
trainer's GIL, and it is stopped like every other process astuner owns (own process group,
PDEATHSIG, stop by PID). It chooses its own free port and announces the URL on stdout, so there
is no window in which another process can take a port we picked.
"""

from __future__ import annotations

import selectors
import subprocess
import sys
import time
from pathlib import Path

from astuner.processes import die_with_parent, log_tail, stop_process_group


class LogviewStartError(RuntimeError):
    """The viewer did not come up; the message holds the tail of its log."""


class LogviewProcess:
    """Owns one ``python -m astuner.logview <experiment> --announce`` child.

    Args:
        experiment_dir: the run's records folder.
        log_path: where the viewer's request log and errors go.
        host: bind address (127.0.0.1 unless the user asked otherwise).
        startup_timeout: seconds to wait for the URL.
    """

    def __init__(self, experiment_dir: Path, log_path: Path, host: str = "127.0.0.1", startup_timeout: float = 30.0):
        self.experiment_dir, self.log_path, self.host = experiment_dir, log_path, host
        self.startup_timeout = startup_timeout
        self.url = ""
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        argv = [sys.executable, "-m", "astuner.logview", str(self.experiment_dir), "--announce", "--host", self.host]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.pid = self._proc.pid
        assert self._proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while not self.url:
                left = deadline - time.monotonic()
                if left <= 0 or self._proc.poll() is not None:
                    self.close()
                    raise LogviewStartError(
                        f"logview did not start; its log ({self.log_path}):\n{log_tail(self.log_path)}"
                    )
                if sel.select(timeout=min(left, 0.5)):
                    self.url = self._proc.stdout.readline().decode().strip()
        self._proc.stdout.close()  # it announces once; nothing else is written there
        return self.url

    def close(self) -> None:
        if self.pid is None:
            return
        stop_process_group(self.pid, "logview", grace=5.0)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.pid = None

    def __enter__(self) -> LogviewProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
