"""``task_reader.type: env_service``: task ids from the server; an unreachable server is a one-line error."""

from __future__ import annotations

import pytest

from astuner.env_service import EnvCallSettings, EnvServiceClient
from astuner.task_reader import TaskReaderError
from astuner.task_reader.env_service import EnvServiceReader

FAST = EnvCallSettings(timeout=1.0, retries=0, backoff=0.0)


def test_tasks_are_the_listed_ids(reference):
    url, _ = reference
    reader = EnvServiceReader(EnvServiceClient(url, "guess_number", FAST), "train", "val")
    train, val = reader.get_training_tasks(), reader.get_validation_tasks()
    assert [t.task_id for t in train] == [f"train-{i}" for i in range(20)]
    assert [t.task_id for t in val] == ["val-0", "val-1", "val-2", "val-3"]
    assert train[0].env_type == "guess_number" and train[0].init_messages == []  # they come from /create
    assert EnvServiceReader(EnvServiceClient(url, "guess_number", FAST), "train", None).get_validation_tasks() == []


def test_bad_split_and_dead_server_name_the_key(reference):
    url, _ = reference
    reader = EnvServiceReader(EnvServiceClient(url, "guess_number", FAST), "training", "val")
    with pytest.raises(TaskReaderError, match=r"env_service.training_split = 'training': env service .*unknown split"):
        reader.get_training_tasks()
    dead = EnvServiceReader(EnvServiceClient("http://127.0.0.1:9", "guess_number", FAST), "train", None)
    with pytest.raises(TaskReaderError, match=r"http://127.0.0.1:9 POST /get_env_profile: connection refused"):
        dead.get_training_tasks()


def test_an_empty_training_split_is_an_error(faulty):
    server, plan = faulty
    plan.faults["get_env_profile"] = ["ok", "empty"]
    reader = EnvServiceReader(EnvServiceClient(server.url, "t", FAST), "train", None)
    assert [t.task_id for t in reader.get_training_tasks()] == ["a", "b"]
    with pytest.raises(TaskReaderError, match=f"training_split = 'train': the env service at {server.url} lists no"):
        reader.get_training_tasks()
