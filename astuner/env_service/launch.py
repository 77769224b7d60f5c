"""The environment server as a child process that astuner owns (``task_reader.env_service.launch_command``).

Same ownership rules as every child astuner owns (``astuner.processes.ChildProcess`` keeps them):
its own process group, ``PR_SET_PDEATHSIG`` so it dies with astuner even on SIGKILL, its output in
the experiment folder (``env_service.log``), a readiness wait that fails fast, quoting its log,
if the process exits, and ``close()`` stopping the whole group by PID, never by name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from loguru import logger

from astuner.processes import ChildProcess, free_port, log_tail


def fill_placeholders(launch_command: list[str], env_url: str, port: int) -> tuple[list[str], str]:
    """``launch_command`` and ``env_url`` with ``{port}`` and ``{python}`` (this interpreter) filled in.

    Plain ``str.replace``, not ``str.format``: commands may contain other braces (JSON arguments).
    """

    def fill(text: str) -> str:
        return text.replace("{port}", str(port)).replace("{python}", sys.executable)

    return [fill(arg) for arg in launch_command], fill(env_url)


class EnvServer:
    """Owner of one launched environment server.

    Args:
        argv: the command (placeholders already filled in).
        base_url: where it will serve.
        log_path: its stdout and stderr.
        cwd: its working directory (the experiment YAML's folder, so relative scripts resolve as in the YAML).
        ready_path: GET path answering 2xx once ready; None: any HTTP answer at ``base_url`` counts.
        startup_timeout: seconds to wait for readiness.

    Example:
        >>> with EnvServer(argv, "http://127.0.0.1:8123", records / "env_service.log", yaml_dir) as server:
        ...     run_episodes(server.base_url)                                             # doctest: +SKIP
    """

    def __init__(
        self,
        argv: list[str],
        base_url: str,
        log_path: Path,
        cwd: Path,
        ready_path: str | None = None,
        startup_timeout: float = 120.0,
    ):
        self.argv, self.base_url, self.log_path, self.cwd = argv, base_url.rstrip("/"), log_path, cwd
        self.ready_path, self.startup_timeout = ready_path, startup_timeout
        url = self.base_url + (ready_path or "/")
        self._child = ChildProcess(
            argv,
            "the env service",
            log_path,
            key="astuner.task_reader.env_service.launch_command",
            cwd=cwd,
            ready=lambda: self._answers(url),
            waiting_for=f"GET {url} to answer" + (" 2xx" if ready_path else ""),
            startup_timeout=startup_timeout,
            timeout_key="astuner.task_reader.env_service.startup_timeout",
            grace=5.0,
        )

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def start(self) -> str:
        """Start the server and wait until it is ready; returns its base URL.

        Raises:
            ProcessStartError: the command cannot run, exits, or is not ready in time.
        """
        logger.info(f"starting the env service on {self.base_url}; log: {self.log_path}")
        self._child.start()
        return self.base_url

    def _answers(self, url: str) -> bool:
        try:
            response = httpx.get(url, timeout=2.0)
        except httpx.HTTPError:
            return False
        return self.ready_path is None or response.is_success

    def exit_code(self) -> int | None:
        """The server's exit code if it has exited (it should not, before ``close()``)."""
        return self._child.poll()

    def close(self) -> None:
        """Stop the server's process group (reporting it if it had died during the run)."""
        code = None if self._child.closed else self._child.poll()
        if code is not None:
            logger.warning(
                f"the env service (pid {self.pid}) had exited with code {code} during the run; "
                f"last lines of {self.log_path}:\n{log_tail(self.log_path, 5)}"
            )
        self._child.close()

    def __enter__(self) -> EnvServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def launch_env_server(
    launch_command: list[str],
    env_url: str,
    log_path: Path,
    cwd: Path,
    ready_path: str | None,
    startup_timeout: float,
) -> EnvServer:
    """The (not yet started) owner for the configured command, on a free port if it uses ``{port}``."""
    argv, url = fill_placeholders(launch_command, env_url, free_port())
    return EnvServer(argv, url, log_path, cwd, ready_path, startup_timeout)
