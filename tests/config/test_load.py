"""Composition of the seed YAML, overrides, provenance of errors, backbone warnings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from astuner.config import ConfigError, load_config
from tests.conftest import REPO, TUTORIAL_YAML


def issues_of(excinfo) -> list[str]:
    return [str(i) for i in excinfo.value.issues]


def test_tutorial_yaml_composes_with_verl_and_trinity_defaults():
    loaded = load_config(TUTORIAL_YAML, cwd=REPO)
    a = loaded.astuner
    assert a.project_name == "math_agent"
    assert a.data.train_batch_size == 264
    assert a.rollout.num_repeat == 4 and a.rollout.max_model_len == 13000
    assert a.rollout.compute_madness_checklist == ["nonsense", "wrong_toolcall"]
    assert a.trainer_common.trinity_only__n_vllm_engine == 2
    assert a.task_reader.huggingface_dat_repo.dataset_path == "gsm8k/main"
    assert loaded.experiment_name == "math_agent"
    # verl defaults composed at the top level, trinity defaults merged under the user's trinity keys
    assert loaded.tree["algorithm"]["adv_estimator"] == "grpo"
    assert loaded.tree["actor_rollout_ref"]["rollout"]["name"] == "vllm"
    assert loaded.tree["trinity"]["trainer"]["max_token_len_per_gpu"] == 13000
    assert loaded.tree["trinity"]["synchronizer"]["sync_method"] == "nccl"


def test_composition_does_not_depend_on_the_working_directory(tmp_path):
    from_repo = load_config(TUTORIAL_YAML, cwd=REPO).tree
    from_tmp = load_config(TUTORIAL_YAML, cwd=tmp_path).tree
    assert from_repo == from_tmp


def test_overrides_take_effect_and_are_typed():
    loaded = load_config(TUTORIAL_YAML, ["astuner.rollout.num_repeat=8", "trinity.trainer.grad_clip=0.5"], cwd=REPO)
    assert loaded.astuner.rollout.num_repeat == 8
    assert loaded.tree["trinity"]["trainer"]["grad_clip"] == 0.5
    assert "astuner.rollout.num_repeat" in loaded.user_keys


def test_override_of_a_class_reference_needs_no_quoting():
    ref = "tutorial.example_math_agent.workflow->MathAgentWorkflow"
    loaded = load_config(TUTORIAL_YAML, [f"astuner.rollout.agentscope_workflow={ref}"], cwd=REPO)
    assert loaded.astuner.rollout.agentscope_workflow == ref


def test_typo_in_yaml_names_key_file_and_suggestion(tmp_path):
    text = TUTORIAL_YAML.read_text().replace("    num_repeat: 4", "    num_repaet: 4")
    bad = tmp_path / "typo.yaml"
    bad.write_text(text.replace("tutorial.example_math_agent.workflow", "workflow"))
    (tmp_path / "workflow.py").write_text((TUTORIAL_YAML.parent / "workflow.py").read_text())
    with pytest.raises(ConfigError) as e:
        load_config(bad, cwd=tmp_path)
    (line,) = issues_of(e)
    assert "astuner.rollout.num_repaet" in line and "typo.yaml" in line and "num_repeat" in line


def test_typo_in_override_is_attributed_to_the_command_line():
    with pytest.raises(ConfigError) as e:
        load_config(TUTORIAL_YAML, ["astuner.rollout.num_repeet=3"], cwd=REPO)
    (line,) = issues_of(e)
    assert line.startswith("command line:") and "astuner.rollout.num_repeat" in line


def test_all_value_errors_are_reported_together(minimal_experiment):
    path = minimal_experiment(
        {
            "astuner": {
                "rollout": {"temperature": -1, "num_repeat": "four", "compute_madness_checklist": ["nonsens"]},
                "data": {"train_batch_size": 0},
                "task_reader": {"type": "envservice"},
            }
        }
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = issues_of(e)
    assert len(lines) == 5
    joined = "\n".join(lines)
    assert "temperature: = -1 is out of range; it must be >= 0.0" in joined
    assert "num_repeat: = 'four' is not an integer" in joined
    assert "did you mean 'nonsense'?" in joined
    assert "train_batch_size: = 0 is out of range; it must be >= 1" in joined
    assert "'envservice' is not allowed; choose from huggingface_dat_repo, dataset_file" in joined
    assert all(line.startswith(str(path)) for line in lines)


def test_key_in_the_wrong_section_points_to_where_it_lives(minimal_experiment):
    path = minimal_experiment({"astuner": {"data": {"num_repeat": 4}}})
    with pytest.raises(
        ConfigError,
        match=r"astuner.data.num_repeat: unknown key; this key lives at "
        r"astuner.rollout.num_repeat",
    ):
        load_config(path)


def test_unknown_top_level_section_is_an_error(minimal_experiment):
    path = minimal_experiment({"astunr": {"project_name": "x"}})
    with pytest.raises(ConfigError, match="astunr: unknown top-level section; did you mean 'astuner'"):
        load_config(path)


def test_missing_required_keys(write_yaml):
    from tests.conftest import SEED_HEADER

    path = write_yaml("astuner:\n  project_name: x\n" + SEED_HEADER)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    joined = "\n".join(issues_of(e))
    assert "astuner.rollout.agentscope_workflow: is required" in joined
    assert "astuner.model.path: is required" in joined
    assert "astuner.task_reader.huggingface_dat_repo.dataset_path: is required" in joined


def test_cross_field_check(minimal_experiment):
    path = minimal_experiment({"astuner": {"rollout": {"max_model_len": 512, "max_response_length_in_one_turn": 1024}}})
    with pytest.raises(ConfigError, match="max_response_length_in_one_turn: = 1024 exceeds rollout.max_model_len"):
        load_config(path)


def test_backbone_only_keys_warn_only_when_user_set(minimal_experiment):
    quiet = load_config(minimal_experiment())
    assert quiet.warnings == ()  # defaults for trinity/verl never warn
    loaded = load_config(
        minimal_experiment(
            {
                "astuner": {"trainer_common": {"trinity_only__n_vllm_engine": 2}},
                "trinity": {"trainer": {"grad_clip": 0.1}},
                "actor_rollout_ref": {"actor": {"optim": {"lr": 1e-5}}},
            }
        )
    )
    joined = "\n".join(loaded.warnings)
    assert "trinity_only__n_vllm_engine has no effect with --backbone=debug" in joined
    assert "trinity.trainer.grad_clip has no effect with --backbone=debug" in joined
    assert "actor_rollout_ref.actor.optim.lr has no effect with --backbone=debug (only with --backbone=verl)" in joined
    trinity = load_config(minimal_experiment(name="t.yaml"), backbone="trinity")
    assert trinity.backbone == "trinity" and trinity.warnings == ()


def test_bad_yaml_syntax_names_line(write_yaml):
    path = write_yaml("astuner:\n  project_name: [x\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML at line \d+"):
        load_config(path)


def test_duplicate_keys_are_refused(write_yaml):
    path = write_yaml("astuner:\n  project_name: a\n  project_name: b\n")
    with pytest.raises(ConfigError, match="duplicate key 'project_name'"):
        load_config(path)


def test_missing_file_and_bad_backbone(tmp_path, minimal_experiment):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="'ray' is not one of debug, verl, trinity"):
        load_config(minimal_experiment(), backbone="ray")


def test_missing_defaults_entry(minimal_experiment):
    path = minimal_experiment()
    path.write_text(path.read_text().replace("  - verl_default\n", "  - verl_defualt\n"))
    with pytest.raises(ConfigError, match="verl_defualt"):
        load_config(path)


def test_relative_paths_resolve_against_the_yaml_folder(minimal_experiment, tmp_path):
    loaded = load_config(minimal_experiment(), cwd=Path("/"))
    assert loaded.astuner.task_reader.dataset_file.training_path == str(tmp_path / "tasks.jsonl")


def test_missing_task_file_lists_places_searched(minimal_experiment):
    path = minimal_experiment({"astuner": {"task_reader": {"dataset_file": {"validation_path": "val.jsonl"}}}})
    with pytest.raises(ConfigError, match=r"validation_path: = 'val.jsonl': file not found \(searched .*val.jsonl or"):
        load_config(path)


def test_resolved_yaml_round_trips(minimal_experiment):
    loaded = load_config(minimal_experiment())
    tree = yaml.safe_load(loaded.to_yaml())
    assert list(tree)[0] == "astuner" and tree["astuner"]["rollout"]["num_repeat"] == 4


def test_searchpath_is_resolved_from_the_installed_package(minimal_experiment, tmp_path, monkeypatch):
    """A folder named astuner/default_config in the CWD must not shadow the package's defaults."""
    fake = tmp_path / "cwd" / "astuner" / "default_config"
    fake.mkdir(parents=True)
    (fake / "astuner_default.yaml").write_text("astuner:\n  project_name: shadowed\n")
    monkeypatch.chdir(tmp_path / "cwd")
    assert os.getcwd() == str(tmp_path / "cwd")
    assert load_config(minimal_experiment()).astuner.project_name == "astuner"


def test_user_sections_reach_the_view_and_near_misses_are_typos(minimal_experiment):
    loaded = load_config(minimal_experiment({"my_game": {"board_size": 5}}))
    assert loaded.composed().my_game.board_size == 5 and loaded.tree["my_game"] == {"board_size": 5}
    assert loaded.warnings == ()  # a section of the user's own is no backbone's: nothing to warn about
    for typo, meant in (("trinty", "trinity"), ("astunre", "astuner"), ("trainr", "trainer")):
        with pytest.raises(ConfigError, match=f"{typo}: unknown top-level section; did you mean '{meant}'"):
            load_config(minimal_experiment({typo: {"x": 1}}, name=f"{typo}.yaml"))


def test_the_loaded_config_is_frozen_and_derived_copies_are_new(minimal_experiment):
    import dataclasses

    from astuner.config.schema import FrozenConfigError

    loaded = load_config(minimal_experiment())
    with pytest.raises(FrozenConfigError):
        loaded.astuner.rollout.num_repeat = 9
    changed = loaded.replace_astuner(dataclasses.replace(loaded.astuner, project_name="other"))
    assert changed.astuner.project_name == "other" and loaded.astuner.project_name == "astuner"
    with pytest.raises(FrozenConfigError):
        changed.astuner.project_name = "again"
