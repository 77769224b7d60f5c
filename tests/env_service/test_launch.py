"""The owned env server: a real child process, readiness, failures with the log's tail, nothing left behind."""

from __future__ import annotations

import os
import sys
import time

import httpx
import pytest

from astuner.env_service.launch import EnvServer, fill_placeholders, launch_env_server
from astuner.processes import ProcessStartError

REFERENCE = ["{python}", "-m", "astuner.env_service.reference_server", "--port", "{port}", "--num-train", "3"]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); it is gone once /proc says so or it is reaped
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_placeholders_are_filled_in_command_and_url():
    argv, url = fill_placeholders(["{python}", "-c", '{"a": 1}', "--port={port}"], "http://127.0.0.1:{port}/", 4321)
    assert argv == [sys.executable, "-c", '{"a": 1}', "--port=4321"] and url == "http://127.0.0.1:4321/"


def test_reference_server_runs_as_an_owned_child_and_stops(tmp_path):
    log = tmp_path / "env_service.log"
    server = launch_env_server(REFERENCE, "http://127.0.0.1:{port}", log, tmp_path, "/health", 60)
    with server:
        answer = httpx.post(f"{server.base_url}/get_env_profile", json={"params": {"split": "train"}})
        assert answer.json() == {"data": ["train-0", "train-1", "train-2"]}
        pid = server.pid
        assert os.getpgid(pid) == pid  # its own process group: stopped as a group, never by name
    assert gone(pid)
    assert "guess_number env service on http://127.0.0.1:" in log.read_text()


def test_a_command_that_exits_fails_fast_with_its_log_tail(tmp_path):
    command = [sys.executable, "-c", "import sys; print('config file missing: env.toml'); sys.exit(3)"]
    started = time.monotonic()
    with pytest.raises(
        ProcessStartError, match=r"exited with code 3 while starting; .*env.log says: config file missing"
    ):
        EnvServer(command, "http://127.0.0.1:9", tmp_path / "env.log", tmp_path, None, 60).start()
    assert time.monotonic() - started < 10


def test_a_server_that_never_becomes_ready_is_stopped(tmp_path):
    command = [sys.executable, "-c", "import time; print('warming up', flush=True); time.sleep(60)"]
    server = EnvServer(command, "http://127.0.0.1:9", tmp_path / "env.log", tmp_path, "/health", 1.0)
    with pytest.raises(
        ProcessStartError, match=r"not ready within 1s \(waiting for GET http://127.0.0.1:9/health"
    ) as exc:
        server.start()
    assert str(exc.value).endswith("env.log says: warming up") and "\n" not in str(exc.value)
    assert server.pid is not None and gone(server.pid)


def test_a_missing_program_is_a_one_line_error(tmp_path):
    with pytest.raises(ProcessStartError, match=r"launch_command\) cannot be started: '/no/such/env-server' is not an"):
        EnvServer(["/no/such/env-server"], "http://127.0.0.1:9", tmp_path / "env.log", tmp_path).start()


def test_relative_scripts_run_from_the_yaml_folder(tmp_path):
    (tmp_path / "my_env.py").write_text(
        "import sys\nfrom astuner.env_service.reference_server import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    command = ["{python}", "my_env.py", "--port", "{port}"]
    with launch_env_server(command, "http://127.0.0.1:{port}", tmp_path / "l.log", tmp_path, "/health", 60) as server:
        assert httpx.get(f"{server.base_url}/health").status_code == 200
