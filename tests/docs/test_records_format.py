"""docs/reference/records-format.md documents every field of a trajectory record and of a checkpoint's state."""

from __future__ import annotations

import dataclasses

import pytest

from astuner.backbone.debug.checkpoint import TrainState
from astuner.context.types import LLMCall, Sample
from astuner.rollout.runner import Episode
from tests.docs.code_keys import dict_keys, table_names
from tests.docs.conftest import DOCS

PAGE = DOCS / "reference" / "records-format.md"


@pytest.mark.parametrize(
    ("heading", "fields"),
    [
        ("### Episode", set(Episode(episode_id="s1-t-r0", task_id="t", repeat_index=0, status="ok").to_dict())),
        ("### LLM call", {f.name for f in dataclasses.fields(LLMCall)}),
        ("### Sample", {f.name for f in dataclasses.fields(Sample)}),
    ],
)
def test_each_record_field_has_a_line(heading, fields):
    documented = table_names(PAGE, heading)
    assert fields - documented == set(), f"{heading}: undocumented {sorted(fields - documented)}"
    assert documented - fields == set(), f"{heading}: documented but gone {sorted(documented - fields)}"


def test_an_episodes_metrics_are_listed():
    written = (
        dict_keys("astuner/rollout/runner.py", "_finish")
        | dict_keys("astuner/context/merge.py", "metrics")
        | dict_keys("astuner/tuner/episode_llm.py", "__init__")
    )
    row = next(line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("| `metrics` |"))
    missing = sorted(k for k in written if f"`{k}`" not in row)
    assert not missing, f"the episode's metrics row lacks {missing}"


def test_a_checkpoints_state_is_described():
    text = PAGE.read_text(encoding="utf-8").split("## Checkpoints", 1)[1]
    state = {f.name for f in dataclasses.fields(TrainState)} | dict_keys(
        "astuner/backbone/debug/checkpoint.py", "save_checkpoint"
    )
    assert all(f"`{name}`" in text for name in state), sorted(n for n in state if f"`{n}`" not in text)
