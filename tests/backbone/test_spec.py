"""The run spec the verl/Trinity workers read, and the runner they build from it once per process."""

from __future__ import annotations

from astuner.backbone.spec import RunSpec, load_spec, worker_runner
from astuner.config.load import load_config


def test_a_worker_builds_its_runner_once_and_binds_each_episode(minimal_experiment, tmp_path, smollm2_tokenizer):
    loaded = load_config(minimal_experiment({"my_game": {"level": 2}}, name="spec.yaml"))
    path = RunSpec.of(loaded, tmp_path / "records").write(tmp_path / "records" / "verl" / "astuner_run.json")
    spec, cfg = load_spec(str(path))
    assert spec.cwd == str(loaded.cwd) and spec.yaml_dir == str(loaded.yaml_path.parent)
    assert cfg == loaded.astuner  # the workers rebuild exactly the loaded config

    first = worker_runner(str(path), smollm2_tokenizer)
    assert worker_runner(str(path), smollm2_tokenizer) is first  # workflow class, judge, renderer: once
    assert first.engine is None and first.env is None  # each episode binds its own (and closes it)
    assert first.config.my_game.level == 2 and first.config.astuner.model.path == loaded.astuner.model.path
    bound = first.bind(engine := object())
    assert bound.engine is engine and first.engine is None and bound.workflow_cls is first.workflow_cls
