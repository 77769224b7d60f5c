"""The backbone registry and the debug backbone's plan (the verl and Trinity plans are tested in their envs)."""

from __future__ import annotations

import pytest

from astuner.backbone import REGISTRY, get_backbone
from astuner.config.errors import ConfigError
from astuner.config.load import load_config
from astuner.config.schema import BACKBONES


def test_every_schema_backbone_is_registered_and_nothing_else():
    assert tuple(REGISTRY) == BACKBONES
    assert get_backbone("debug").name == "debug"


def test_an_unknown_backbone_is_one_line():
    with pytest.raises(ConfigError) as err:
        get_backbone("trinty")
    (issue,) = err.value.issues
    assert str(issue) == "command line: --backbone: = 'trinty' is not one of debug, verl, trinity" and "\n" not in str(
        issue
    )


def test_debug_plan_is_the_resolved_config_and_writes_nothing(minimal_experiment, tmp_path):
    loaded = load_config(minimal_experiment())
    records = tmp_path / "launcher_record" / "exp"
    plan = get_backbone("debug").plan(loaded, records, with_ray=True)
    assert plan.config_path == records / "config.yaml" and plan.config_text == loaded.to_yaml()
    assert plan.child is None and plan.run_spec is None and dict(plan.files) == {}
    assert plan.class_roots == (loaded.yaml_path.parent, loaded.cwd)
    assert any("--with-ray has no effect with --backbone=debug" in w for w in plan.warnings)
    assert not records.exists()
    assert plan.summary()[0] == f"plan (debug): config -> {records / 'config.yaml'}"
