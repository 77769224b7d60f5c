"""The viewer as a child process of a run (``--with-logview``).

A child, not a thread: its HTTP work never competes with the rollout's event loop or the
trainer's GIL, and it is stopped like every other process astuner owns (``ChildProcess``: own
process group, PDEATHSIG, stop by PID). It chooses its own free port and announces the URL on
stdout, so there is no window in which another process can take a port we picked.
"""

from __future__ import annotations

import select
import sys
from pathlib import Path

from astuner.processes import ChildProcess


class LogviewProcess:
    """Owns one ``python -m astuner.logview <experiment> --announce`` child.

    Args:
        experiment_dir: the run's records folder.
        log_path: where the viewer's request log and errors go.
        host: bind address (127.0.0.1 unless the user asked otherwise).
        startup_timeout: seconds to wait for the URL.

    Raises:
        ProcessStartError: from ``start()``, when the viewer exits or announces nothing in time.
    """

    def __init__(self, experiment_dir: Path, log_path: Path, host: str = "127.0.0.1", startup_timeout: float = 30.0):
        self.experiment_dir, self.log_path, self.host = experiment_dir, log_path, host
        self.url = ""
        argv = [sys.executable, "-m", "astuner.logview", str(experiment_dir), "--announce", "--host", host]
        self._child = ChildProcess(
            argv,
            "logview",
            log_path,
            ready=self._announced,
            waiting_for="its URL on stdout",
            startup_timeout=startup_timeout,
            grace=5.0,
            announce=True,
            poll_interval=0,  # _announced itself waits on the pipe
        )

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def _announced(self) -> bool:
        stdout = self._child.stdout
        assert stdout is not None
        if select.select([stdout], [], [], 0.5)[0]:
            self.url = stdout.readline().decode().strip()  # "" at end of file: the exit is seen next
        return bool(self.url)

    def start(self) -> str:
        """Start the viewer and return its URL."""
        self._child.start()
        self._child.stdout.close()  # it announces once; nothing else is written there
        return self.url

    def close(self) -> None:
        self._child.close()

    def __enter__(self) -> LogviewProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
