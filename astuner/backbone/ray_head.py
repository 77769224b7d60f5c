"""A local Ray head that a run owns (``--with-ray``), shared by the verl and Trinity backbones.

Why its own process group and ``--block``: astuner must stop exactly the Ray it started, by PID,
never with ``ray stop`` (which stops every Ray of the user on the machine).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from astuner.processes import ChildProcess, LogFollower, failure_line, free_port, port_answers

__all__ = ["RayHead", "failure_line", "launch", "run_on_ray"]


class RayHead:
    """A local Ray head that this run owns: ``ray start --head --block`` in its own process group.

    Why ``--block``: without it ``ray start`` daemonizes the head and returns, leaving nothing to stop
    by PID; with it, stopping our process group stops exactly the Ray processes we started.

    Raises:
        ProcessStartError: from ``__enter__``, when ``ray start`` exits or its port does not answer in time.
    """

    def __init__(self, log_path: Path, num_cpus: int | None = None, startup_timeout: float = 120.0):
        self.log_path, self.num_cpus, self.startup_timeout = log_path, num_cpus, startup_timeout
        self.address = ""
        self.token = secrets.token_hex(32)  # what Ray's own generator makes: 256 bits
        self._child: ChildProcess | None = None

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.pid

    @property
    def auth_env(self) -> dict[str, str]:
        """Token authentication with this head's own token, for the head and every client.

        Why a token of our own: Ray 2.60's ``ray start`` turns authentication on only when
        ``~/.ray/auth_token`` already exists (some earlier ``ray.init()`` wrote it), so on a fresh
        machine the head would run open while clients asking for token mode fail to connect. An
        explicit mode and token make both sides agree on every machine, and touch no file of the user.
        """
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    @property
    def client_env(self) -> dict[str, str]:
        """What a client process needs to join this head."""
        return {"RAY_ADDRESS": self.address, **self.auth_env}

    def __enter__(self) -> RayHead:
        port = free_port()
        # The module, not the ``ray`` console script: a script's shebang breaks when a venv is moved.
        cmd = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ]
        if self.num_cpus:
            cmd.append(f"--num-cpus={self.num_cpus}")
        self.address = f"127.0.0.1:{port}"
        self._child = ChildProcess(
            cmd,
            "the Ray head (ray start --head)",
            self.log_path,
            env={**os.environ, **self.auth_env},
            ready=lambda: port_answers("127.0.0.1", port),
            waiting_for=f"port {port} to accept connections",
            startup_timeout=self.startup_timeout,
            grace=60.0,  # Ray drains for up to 30 s on SIGTERM
            stop_leader_first=True,
            poll_interval=0.5,
        ).start()
        logger.info(f"Ray head (pid {self.pid}) at {self.address}, log {self.log_path}")
        return self

    def close(self) -> None:
        if self._child is None or self._child.closed:
            return
        self._child.close()
        self._forget_address()

    def _forget_address(self) -> None:
        """Remove Ray's pointer to this head (``/tmp/ray/ray_current_cluster``) if it still names our port.

        Why: ``ray start`` writes it and only ``ray stop`` removes it; left behind, every later
        ``ray.init()`` on this machine without an address tries to join the dead head and fails.
        """
        pointer = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        try:
            if pointer.read_text().strip().endswith(":" + self.address.rsplit(":", 1)[1]):
                pointer.unlink()
        except OSError:
            pass

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_on_ray(
    cmd: list[str],
    log_path: Path,
    ray_log: Path | None,
    env: dict[str, str] | None = None,
    progress: Callable[[str], str | None] | None = None,
) -> int:
    """Run a backbone's launcher ``cmd`` as a child (output to ``log_path``) and return its exit code.

    With ``ray_log`` a local Ray head owned by this run is started first and the child joins it;
    without, ``RAY_ADDRESS`` (an existing cluster) passes through, or the backbone starts its own Ray.
    The child has its own process group and dies with us (PDEATHSIG), so a Ctrl-C, SIGTERM or even a
    SIGKILL here stops it. ``progress`` turns a line of the child's log into a line to show (or None):
    the backbone's own trainer prints its steps there.

    Raises:
        ProcessStartError: the Ray head or ``cmd`` cannot be started.
    """
    child_env = {**os.environ, **(env or {})}
    with contextlib.ExitStack() as owned:
        if ray_log is not None:
            child_env.update(owned.enter_context(RayHead(ray_log)).client_env)
        elif child_env.get("RAY_ADDRESS"):
            logger.info(f"attaching to the Ray cluster at RAY_ADDRESS={child_env['RAY_ADDRESS']}")
        logger.info(f"{' '.join(cmd)} (log: {log_path})")
        follower = LogFollower(log_path)  # before the child writes: only this run's lines are shown
        what = cmd[2] if len(cmd) > 2 else cmd[0]
        child = owned.enter_context(ChildProcess(cmd, what, log_path, env=child_env, grace=60.0))
        return _wait(child, follower, progress)


def _wait(child: ChildProcess, follower: LogFollower, progress: Callable[[str], str | None] | None) -> int:
    while True:
        code = child.poll()
        for line in follower.new_lines() if progress else ():
            shown = progress(line)
            if shown:
                logger.info(shown)
        if code is not None:
            return code
        time.sleep(1.0)


def launch(
    experiment_root: Path,
    notes: list[str],
    cmd: list[str],
    log_name: str,
    with_ray: bool,
    progress: Callable[[str], str | None] | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Log the translation's notes, then run a backbone's launcher (``run_on_ray``) with its log in the records."""
    for note in notes:
        logger.warning(note)
    log_path = experiment_root / log_name
    code = run_on_ray(cmd, log_path, experiment_root / "ray.log" if with_ray else None, env=env, progress=progress)
    if code != 0:
        logger.error(f"{' '.join(cmd[:3])} exited with code {code}; {log_path} says: {failure_line(log_path)}")
    return code
