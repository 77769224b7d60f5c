"""Launch verl's own trainer (``python -m verl.trainer.main_ppo``) on the translated config.

Everything verl reads is written into the records first, so a run can be inspected or replayed:
``verl/verl_config.yaml`` (the whole translated config), ``verl/train.parquet`` / ``val.parquet``
(the tasks), ``verl/agent_loops.yaml`` (registers ``AstunerAgentLoop`` by name) and
``verl/astuner_run.json`` (what the adapter rebuilds in verl's workers). verl runs as a child
process of this one (its log in ``verl.log``), so a Ctrl-C or SIGTERM here stops it in ``finally``.

Ray: ``--with-ray`` starts a local head owned by this run (``RayHead``), stopped by its process
group at exit; otherwise ``RAY_ADDRESS`` (an existing cluster) is passed through, or verl's
``run_ppo`` starts a private Ray itself.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from loguru import logger

from astuner.backbone.verl.config import AGENT_LOOP_NAME, VerlTranslation, to_verl
from astuner.backbone.verl.progress import LogFollower, describe, parse_step_line
from astuner.backbone.verl.spec import AGENT_LOOP_CLASS, RunSpec
from astuner.backbone.verl.tasks import task_rows, write_parquet
from astuner.config.load import LoadedConfig
from astuner.processes import die_with_parent, free_port, log_tail, stop_process_group
from astuner.records import Experiment
from astuner.task_reader.task import Task


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
        cmd = [
            ray_cli(),
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


def ray_cli() -> str:
    """The ``ray`` command of this Python's Ray: next to the interpreter (a venv), else on PATH
    (a ``pip install --target`` folder whose ``bin`` is on PATH)."""
    beside = Path(sys.executable).parent / "ray"
    if beside.is_file():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise RuntimeError(f"--with-ray: no 'ray' command next to {sys.executable} or on PATH; is Ray installed?")
    return found


def write_inputs(
    loaded: LoadedConfig, root: Path, train: list[Task], val: list[Task], model_path: str | None = None
) -> tuple[VerlTranslation, Path]:
    """Write everything verl reads into ``root/verl/``; returns the translation and the config file."""
    verl_dir = root / "verl"
    translation = to_verl(loaded, root, model_path=model_path)
    write_parquet(task_rows(train, "train", AGENT_LOOP_NAME), verl_dir / "train.parquet")
    if val:
        write_parquet(task_rows(val, "val", AGENT_LOOP_NAME), verl_dir / "val.parquet")
    else:  # verl always builds a validation loader; with no validation tasks it never runs one
        translation.config.data.val_files = str(verl_dir / "train.parquet")
        translation.config.trainer.test_freq = -1
        translation.config.trainer.val_before_train = False
        translation.warnings.append("no validation tasks: verl's validation is off (trainer.test_freq = -1)")
    spec = RunSpec(
        astuner=loaded.tree["astuner"],
        yaml_dir=str(loaded.yaml_path.parent),
        cwd=str(Path.cwd()),
        trajectories_dir=str(root / "trajectories"),
    ).write(verl_dir / "astuner_run.json")
    loops = [{"name": AGENT_LOOP_NAME, "_target_": AGENT_LOOP_CLASS, "astuner_run": str(spec)}]
    (verl_dir / "agent_loops.yaml").write_text(yaml.safe_dump(loops, sort_keys=False), encoding="utf-8")
    config_path = verl_dir / "verl_config.yaml"
    config_path.write_text(translation.to_yaml(), encoding="utf-8")
    return translation, config_path


def _follow(proc: subprocess.Popen[bytes], log_path: Path, interval: float = 2.0) -> int:
    """Wait for verl, logging one line per training step and validation as its log shows them."""
    follower = LogFollower(log_path)
    while True:
        code = proc.poll()
        for line in follower.new_lines():
            parsed = parse_step_line(line)
            summary = describe(*parsed) if parsed else None
            if summary:
                logger.info(summary)
        if code is not None:
            return code
        time.sleep(interval)


def run_verl(
    loaded: LoadedConfig, experiment: Experiment, train: list[Task], val: list[Task], *, with_ray: bool
) -> int:
    """Write verl's inputs into the records and run verl's trainer to completion; returns its exit code."""
    from astuner.model import resolve_model_path

    model_dir = resolve_model_path(loaded.astuner.model.path or "")
    translation, config_path = write_inputs(loaded, experiment.root, train, val, model_path=str(model_dir))
    for w in translation.warnings:
        logger.warning(w)
    cmd = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        f"--config-path={config_path.parent}",
        f"--config-name={config_path.stem}",
    ]
    env = dict(os.environ)
    head = RayHead(experiment.root / "ray.log") if with_ray else None
    try:
        if head is not None:
            head.__enter__()
            env.update(head.client_env)
        elif env.get("RAY_ADDRESS"):
            logger.info(f"attaching to the Ray cluster at RAY_ADDRESS={env['RAY_ADDRESS']}")
        log_path = experiment.root / "verl.log"
        logger.info(f"verl: {' '.join(cmd)} (log: {log_path})")
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=die_with_parent
            )
            try:
                code = _follow(proc, log_path)
            finally:
                if proc.poll() is None:
                    stop_process_group(proc.pid, "verl trainer", grace=60.0)
        if code != 0:
            logger.error(f"verl exited with code {code}; last lines of {log_path}:\n{log_tail(log_path)}")
        return code
    finally:
        if head is not None:
            head.close()
