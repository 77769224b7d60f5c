"""``run_backbone`` starts the configured env server for the run and resolves ``env_url`` to it."""

from __future__ import annotations

import contextlib

import httpx

from astuner.backbone import _start_env_service
from astuner.config import load_config
from astuner.records import open_experiment
from tests.conftest import REPO

TUTORIAL = REPO / "tutorial" / "example_env_service" / "guess_number_cpu.yaml"


def test_launch_command_starts_the_server_for_the_run_and_stops_it(tmp_path):
    loaded = load_config(TUTORIAL, cwd=REPO)
    with open_experiment(tmp_path, loaded.experiment_name, False) as experiment:
        with contextlib.ExitStack() as owned:
            running = _start_env_service(loaded, experiment, owned)
            url = running.astuner.task_reader.env_service.env_url
            assert "{port}" not in url
            # The loaded config is not written to: the run derives a config with the resolved URL.
            assert "{port}" in loaded.astuner.task_reader.env_service.env_url
            profile = httpx.post(f"{url}/get_env_profile", json={"params": {"split": "val"}}).json()["data"]
            assert len(profile) == 16  # the tutorial's --num-val 16 reached the server
        assert (experiment.root / "env_service.log").read_text().count("GET /health") >= 1
    try:
        httpx.get(f"{url}/health", timeout=1.0)
        raise AssertionError("the env server is still answering after the run")
    except httpx.ConnectError:
        pass


def test_without_launch_command_nothing_starts(tmp_path):
    loaded = load_config(
        TUTORIAL,
        [
            "astuner.task_reader.env_service.launch_command=[]",
            "astuner.task_reader.env_service.env_url=http://127.0.0.1:8080",
        ],
        cwd=REPO,
    )
    with open_experiment(tmp_path, loaded.experiment_name, False) as experiment, contextlib.ExitStack() as owned:
        assert _start_env_service(loaded, experiment, owned) is loaded
        assert loaded.astuner.task_reader.env_service.env_url == "http://127.0.0.1:8080"
        assert not (experiment.root / "env_service.log").exists()


def test_the_resolved_url_reaches_the_workers_through_the_run_spec(tmp_path):
    """verl's agent loops and Trinity's workflow runners rebuild their config from the run spec
    (``load_spec``) and open their env client from it: it must name the running server, not '{port}'."""
    import asyncio

    from astuner.backbone.spec import RunSpec, load_spec
    from astuner.rollout.build import env_sessions

    loaded = load_config(TUTORIAL, cwd=REPO)
    with open_experiment(tmp_path, loaded.experiment_name, False) as experiment, contextlib.ExitStack() as owned:
        running = _start_env_service(loaded, experiment, owned)
        planned = RunSpec.of(loaded, experiment.root)  # what the plan holds: the URL template
        assert "{port}" in planned.config["astuner"]["task_reader"]["env_service"]["env_url"]
        path = planned.bind(running).write(experiment.root / "verl" / "astuner_run.json")
        _, cfg = load_spec(str(path))
        url = running.astuner.task_reader.env_service.env_url
        assert cfg.task_reader.env_service.env_url == url

        sessions = env_sessions(cfg)  # what each adapter opens per episode (and closes)
        try:
            assert len(sessions.client.list_task_ids("val")) == 16
        finally:
            asyncio.run(sessions.aclose())
