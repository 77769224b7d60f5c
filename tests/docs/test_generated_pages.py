"""The generated pages (config and CLI references, the merge picture) are current and complete.

Each staleness test can fail: a schema key or a flag added in a copy must change the rendered page, and
``generate.stale`` must then name it.
"""

from __future__ import annotations

import dataclasses

import cli_reference
import config_reference
import generate
import merge_figure
import pytest

from astuner.cli import build_parser
from astuner.config.schema import AstunerConfig, _f
from astuner.config.validate import all_key_paths
from tests.conftest import REPO


def test_the_committed_generated_files_are_current():
    rendered = {path: render() for path, render in generate.ARTIFACTS.items()}
    assert generate.stale(rendered) == [], "stale generated docs: run python scripts/docs/generate.py"
    assert generate.main(["--check"]) == 0


def test_the_config_reference_lists_every_schema_key():
    page = (REPO / config_reference.PAGE).read_text(encoding="utf-8")
    keys = all_key_paths()  # the validator's own walk of the schema, not the generator's
    listed = [f"astuner.{k.path}" for k in config_reference.all_keys()]
    assert sorted(listed) == sorted(keys)
    for key in keys:
        section, leaf = key.rsplit(".", 1)
        assert f"| `{key}` |" in page, f"{key} is missing from the backbone mapping"
        body = page.split(f"## `{section}`", 1)[1].split("\n## ", 1)[0]
        assert f"| `{leaf}` |" in body, f"{key} has no row in the {section} table"


@dataclasses.dataclass
class _WithANewKey(AstunerConfig):
    new_knob: int = _f(3, "A knob added after the page was generated.", min=1, backbones=("debug",))


def test_a_new_schema_key_makes_the_config_reference_stale():
    text = config_reference.render(_WithANewKey)
    assert "| `new_knob` | `int` | `3` | debug | A knob added after the page was generated. Allowed: ≥ 1. |" in text
    assert generate.stale({config_reference.PAGE: text}) == [config_reference.PAGE]


def test_a_key_no_backbone_table_accounts_for_stops_the_generator():
    @dataclasses.dataclass
    class Unmapped(AstunerConfig):
        orphan: int = _f(1, "Set on every backbone, translated by none.")

    with pytest.raises(ValueError, match="astuner.orphan is in none of the verl translation tables"):
        config_reference.render(Unmapped)


def test_backbones_column_drops_keys_a_backbone_ignores():
    meta = {f.name: f.metadata for f in dataclasses.fields(AstunerConfig().rollout)}
    assert config_reference.backbones_of("rollout.max_env_worker", meta["max_env_worker"]) == ("debug", "trinity")
    assert config_reference.backbones_of("rollout.hang_timeout", meta["hang_timeout"]) == ("debug",)


def test_the_cli_reference_documents_every_flag_and_goes_stale_with_a_new_one():
    page = (REPO / cli_reference.PAGE).read_text(encoding="utf-8")
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in page, flag
    parser = build_parser()
    parser.add_argument("--new-flag", action="store_true", help="added after the page was generated")
    text = cli_reference.render([(parser, "astuner")])
    assert "| `--new-flag` | — | added after the page was generated |" in text
    assert generate.stale({cli_reference.PAGE: text}) == [cli_reference.PAGE]


def test_the_merge_picture_shows_the_merge_codes_samples():
    svg = merge_figure.render()
    assert "sample 0 (calls 0, 1)" in svg and "sample 1 (calls 2)" in svg
    masks = [line for line in svg.splitlines() if 'class="mask"' in line]
    assert [m.rsplit(">", 2)[-2][0] for m in masks] == list("11100011" + "11")  # reply, tool result, answer


def test_stale_names_missing_files(tmp_path):
    assert generate.stale({merge_figure.PAGE: "x"}, root=tmp_path) == [merge_figure.PAGE]
