"""A python-execution tool for agents that is safe to run thousands of times during RL.

AgentScope's ``execute_python_code`` runs a plain subprocess with the whole environment (API keys
included), open network, a model-chosen timeout that a child process defeats, and it hangs on more
than 64 KiB of output. During RL a policy explores: it will eventually print forever, fork, allocate
without bound or read secrets. ``execute_python_code`` here has the same call shape (so it drops
into a ``Toolkit``) and enforces:

- a wall timeout (the model's, capped) that kills the whole process group;
- CPU-time, address-space, file-size and open-file limits (``setrlimit``);
- no network: a fresh network namespace when the kernel allows one (root or unprivileged user
  namespaces), plus an audit hook that refuses sockets inside the interpreter either way;
- a scrubbed environment and a fresh temporary working folder, removed afterwards;
- output capped per stream; the rest is drained and discarded, so nothing blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

from agentscope.message import TextBlock
from agentscope.tool import ToolResponse

# Runs inside the child before the user's code: limits, network isolation, then exec.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, socket, sys
limits = json.loads(sys.argv[1])
for name, value in (("RLIMIT_AS", limits["memory_bytes"]), ("RLIMIT_CPU", limits["cpu_seconds"]),
                    ("RLIMIT_FSIZE", limits["file_bytes"]), ("RLIMIT_NOFILE", 256), ("RLIMIT_CORE", 0)):
    resource.setrlimit(getattr(resource, name), (value, value))
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
isolated = libc.unshare(CLONE_NEWNET) == 0 or libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0
def _deny(event, args):
    if event == "socket.__new__" and args[1] != socket.AF_UNIX:
        raise PermissionError("network access is disabled in this sandbox")
    if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
        raise PermissionError("network access is disabled in this sandbox")
sys.addaudithook(_deny)
code = open("main.py", encoding="utf-8").read()
sys.argv = ["main.py"]
exec(compile(code, "main.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one execution.

    Attributes:
        max_wall_seconds: cap on the model's ``timeout`` argument.
        cpu_seconds: CPU time of the interpreter (RLIMIT_CPU).
        memory_bytes: address space (RLIMIT_AS).
        file_bytes: largest file it may write (RLIMIT_FSIZE).
        output_bytes: stdout and stderr kept, each.
    """

    max_wall_seconds: float = 30.0
    cpu_seconds: int = 30
    memory_bytes: int = 1 << 30
    file_bytes: int = 64 << 20
    output_bytes: int = 16 << 10


DEFAULT_LIMITS = SandboxLimits()
_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool


async def _drain(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, int]:
    kept, dropped = bytearray(), 0
    while chunk := await stream.read(65536):
        room = cap - len(kept)
        kept += chunk[:room]
        dropped += max(0, len(chunk) - room)
    return bytes(kept), dropped


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_sandboxed(code: str, timeout: float, limits: SandboxLimits = DEFAULT_LIMITS) -> SandboxResult:
    """Run ``code`` under ``limits`` with a wall timeout of ``min(timeout, limits.max_wall_seconds)``."""
    wall = max(0.1, min(float(timeout), limits.max_wall_seconds))
    workdir = tempfile.mkdtemp(prefix="astuner-pytool-")
    try:
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as f:
            f.write(code)
        env = {**_ENV, "HOME": workdir, "TMPDIR": workdir}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            _BOOTSTRAP,
            json.dumps(asdict(limits)),
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        readers = asyncio.gather(_drain(proc.stdout, limits.output_bytes), _drain(proc.stderr, limits.output_bytes))
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), wall)
        except asyncio.TimeoutError:
            timed_out = True
        finally:
            _kill_group(proc.pid)  # children outlive the interpreter otherwise, and hold the pipes open
            if proc.returncode is None:
                await proc.wait()
        (out, out_dropped), (err, err_dropped) = await readers
        stdout = out.decode("utf-8", "replace") + (
            f"\n[stdout truncated: {out_dropped} bytes dropped]" if out_dropped else ""
        )
        stderr = err.decode("utf-8", "replace") + (
            f"\n[stderr truncated: {err_dropped} bytes dropped]" if err_dropped else ""
        )
        if timed_out:
            stderr += f"\nTimeoutError: the code ran longer than {wall:g} seconds and was killed"
        return SandboxResult(None if timed_out else proc.returncode, stdout, stderr, timed_out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def execute_python_code(code: str, timeout: float = 300, **kwargs: Any) -> ToolResponse:
    """Execute the given python code in a temp file and capture the return
    code, standard output and error. Note you must `print` the output to get
    the result, and the tmp file will be removed right after the execution.

    Args:
        code (`str`):
            The Python code to be executed.
        timeout (`float`, defaults to `300`):
            The maximum time (in seconds) allowed for the code to run.

    Returns:
        `ToolResponse`:
            The response containing the return code, standard output, and
            standard error of the executed code.
    """
    result = await run_sandboxed(code, timeout)
    text = (
        f"<returncode>{result.returncode if result.returncode is not None else -1}</returncode>"
        f"<stdout>{result.stdout}</stdout><stderr>{result.stderr}</stderr>"
    )
    return ToolResponse(content=[TextBlock(type="text", text=text)])
