"""``task_reader.type: env_service`` in the config: the tutorial YAML validates, mistakes are one-line errors."""

from __future__ import annotations

import pytest

from astuner.config import ConfigError, load_config
from tests.conftest import REPO

TUTORIAL = REPO / "tutorial" / "example_env_service" / "guess_number_cpu.yaml"
JUDGE = "astuner.task_judge.env_service_as_judge->EnvServiceJudge"


def env_reader(**env_service) -> dict:
    return {"astuner": {"task_reader": {"type": "env_service", "env_service": env_service}}}


def issues(excinfo) -> list[str]:
    return [str(i) for i in excinfo.value.issues]


def test_tutorial_yaml_validates():
    loaded = load_config(TUTORIAL, cwd=REPO)
    es = loaded.astuner.task_reader.env_service
    assert (es.env_type, es.env_url, es.ready_path) == ("guess_number", "http://127.0.0.1:{port}", "/health")
    assert es.launch_command[:3] == ["{python}", "-m", "astuner.env_service.reference_server"]
    assert loaded.astuner.task_judge.judge_protocol == JUDGE


def test_env_type_is_required(minimal_experiment):
    with pytest.raises(ConfigError) as e:
        load_config(minimal_experiment(env_reader()))
    (line,) = issues(e)
    assert line.endswith(
        "astuner.task_reader.env_service.env_type: is required with task_reader.type: env_service "
        "(the server's kind, e.g. 'appworld')"
    )


@pytest.mark.parametrize(
    ("env_service", "message"),
    [
        ({"env_url": "127.0.0.1:8080"}, "env_url: = '127.0.0.1:8080' is not an http(s) URL"),
        ({"env_url": "http://127.0.0.1:{port}"}, "env_url: = 'http://127.0.0.1:{port}' has '{port}', which only"),
        (
            {"launch_command": ["python", "srv.py", "--port", "{port}"]},
            "launch_command: launch_command has '{port}' but env_url does not",
        ),
        ({"ready_path": "health"}, "ready_path: = 'health' must be a path starting with '/'"),
        ({"retries": -1}, "retries: = -1 is out of range; it must be >= 0"),
        ({"launch_command": "python srv.py"}, "launch_command: = 'python srv.py' is not a list of a string"),
    ],
)
def test_mistakes_are_named_with_key_value_and_fix(minimal_experiment, env_service, message):
    with pytest.raises(ConfigError) as e:
        load_config(minimal_experiment(env_reader(env_type="x", **env_service)))
    (line,) = issues(e)
    assert f"astuner.task_reader.env_service.{message}" in line and "\n" not in line


def test_env_judge_needs_the_env_reader(minimal_experiment):
    with pytest.raises(ConfigError, match="EnvServiceJudge'.*needs task_reader.type: env_service .got 'dataset_file'"):
        load_config(minimal_experiment({"astuner": {"task_judge": {"judge_protocol": JUDGE}}}))
