"""A local Ray head that a run owns (``--with-ray``), shared by the verl and Trinity backbones.

Why its own process group and ``--block``: astuner must stop exactly the Ray it started, by PID,
never with ``ray stop`` (which stops every Ray of the user on the machine).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from astuner.processes import LogFollower, die_with_parent, free_port, stop_process_group


class RayHead:
    """A local Ray head that this run owns: ``ray start --head --block`` in its own process group.

    Why ``--block``: without it ``ray start`` daemonizes the head and returns, leaving nothing to stop
    by PID; with it, stopping our process group stops exactly the Ray processes we started.
    """

    def __init__(self, log_path: Path, num_cpus: int | None = None, startup_timeout: float = 120.0):
        self.log_path, self.num_cpus, self.startup_timeout = log_path, num_cpus, startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    @property
    def client_env(self) -> dict[str, str]:
        """What a client process needs to join this head. Ray 2.60's ``ray start`` turns token
        authentication on (the token goes to ``~/.ray/auth_token``); clients must opt in to send it."""
        return {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token"}

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
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
            )
        self.wait_ready(time.monotonic() + self.startup_timeout)
        logger.info(f"Ray head (pid {self.proc.pid}) at {self.address}, log {self.log_path}")
        return self

    def wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        host, port = self.address.split(":")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection((host, int(port)), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.5)
        self.close()
        raise RuntimeError(f"Ray head not ready after {self.startup_timeout:g}s; see {self.log_path}")

    def close(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_process_group(self.proc.pid, "Ray head", grace=60.0)  # Ray drains for up to 30 s on SIGTERM
        self.proc.wait()
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
    """
    child_env = {**os.environ, **(env or {})}
    head = RayHead(ray_log) if ray_log is not None else None
    try:
        if head is not None:
            head.__enter__()
            child_env.update(head.client_env)
        elif child_env.get("RAY_ADDRESS"):
            logger.info(f"attaching to the Ray cluster at RAY_ADDRESS={child_env['RAY_ADDRESS']}")
        logger.info(f"{' '.join(cmd)} (log: {log_path})")
        follower = LogFollower(log_path)  # before the child writes: only this run's lines are shown
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            try:
                return _wait(proc, follower, progress)
            finally:
                if proc.poll() is None:
                    stop_process_group(proc.pid, cmd[2] if len(cmd) > 2 else cmd[0], grace=60.0)
    finally:
        if head is not None:
            head.close()


def _wait(proc: subprocess.Popen[bytes], follower: LogFollower, progress: Callable[[str], str | None] | None) -> int:
    while True:
        code = proc.poll()
        for line in follower.new_lines() if progress else ():
            shown = progress(line)
            if shown:
                logger.info(shown)
        if code is not None:
            return code
        time.sleep(1.0)


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
