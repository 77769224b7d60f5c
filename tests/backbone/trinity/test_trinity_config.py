"""Config translation (astuner -> Trinity-RFT's Config), Trinity's own check, and the --dry-run."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from astuner.backbone.translate import ADAPTER_KEYS, get_key
from astuner.backbone.trinity.config import NO_EFFECT, TO_TRINITY, to_trinity, trinity_issues
from astuner.config.errors import ConfigError
from astuner.config.load import load_config
from astuner.config.schema import AstunerConfig
from astuner.config.validate import all_key_paths, backbone_only_keys
from tests.backbone.trinity.conftest import REPO, TUTORIAL


def test_every_astuner_key_is_accounted_for():
    """A new schema key must be mapped, used by the adapter, reported as no-effect, or marked per backbone."""
    only = backbone_only_keys()
    covered = set(TO_TRINITY) | set(NO_EFFECT)
    missing = []
    for path in all_key_paths():
        key = path.removeprefix("astuner.")
        if (path in only and "trinity" not in only[path]) or key in covered:
            continue
        if any(key == a or key.startswith(a + ".") for a in ADAPTER_KEYS):
            continue
        missing.append(path)
    assert not missing, f"add these keys to astuner/backbone/trinity/config.py: {missing}"


def test_translated_keys_are_plain_dataclass_values():
    cfg = AstunerConfig()
    for key in TO_TRINITY:
        get_key(cfg, key)
    assert dataclasses.is_dataclass(cfg)


def test_tutorial_translation_maps_every_key(tmp_path):
    loaded = load_config(TUTORIAL, backbone="trinity")
    t = to_trinity(loaded, tmp_path / "math_agent")
    c = t.config
    rollout = c["explorer"]["rollout_model"]
    assert (rollout["engine_num"], rollout["tensor_parallel_size"], rollout["extra_engine_args"]) == (
        2,
        1,
        {"max_num_seqs": 40},
    )
    assert rollout["enable_openai_api"] is True
    assert c["explorer"]["runner_per_model"] == 8  # 64 episodes / (2 engines x 4 repeats)
    assert (c["algorithm"]["repeat_times"], c["buffer"]["batch_size"]) == (4, 264)
    # max_sample_per_task: 4 -> multi-timeline episodes -> Trinity's step-wise GRPO
    assert c["algorithm"]["algorithm_type"] == "multi_step_grpo"
    m = c["model"]
    assert (m["max_prompt_tokens"], m["max_response_tokens"], m["max_model_len"]) == (3000, 10000, 13000)
    assert (m["model_path"], m["temperature"]) == ("Qwen/Qwen2.5-14B-Instruct", 0.7)
    assert (c["trainer"]["save_interval"], c["explorer"]["eval_interval"], c["buffer"]["total_epochs"]) == (
        99999,
        99999,
        99999,
    )
    assert (c["project"], c["name"], c["mode"]) == ("math_agent", "math_agent", "both")
    assert c["checkpoint_root_dir"] == str(tmp_path / "math_agent" / "checkpoints")
    (taskset,) = c["buffer"]["explorer_input"]["tasksets"]
    assert taskset["default_workflow_type"] == "astuner.backbone.trinity.workflow.AstunerTrinityWorkflow"
    assert taskset["workflow_args"]["astuner_run"] == str(tmp_path / "math_agent" / "trinity" / "astuner_run.json")
    assert c["trainer"]["max_token_len_per_gpu"] == 13000  # the YAML's trinity: subtree passes through
    assert c["synchronizer"]["sync_method"] == "nccl"  # trinity_default.yaml passes through
    assert t.warnings == []
    assert "&id" not in t.to_yaml()  # no YAML anchors: each taskset reads on its own


def test_single_timeline_episodes_use_plain_grpo(trinity_experiment, tmp_path):
    loaded = load_config(trinity_experiment(), ["astuner.rollout.multi_turn.max_sample_per_task=1"], backbone="trinity")
    assert to_trinity(loaded, tmp_path).config["algorithm"]["algorithm_type"] == "grpo"
    loaded = load_config(
        trinity_experiment(),
        ["astuner.rollout.multi_turn.max_sample_per_task=1", "astuner.algorithm.adv_estimator=rloo"],
        backbone="trinity",
    )
    assert to_trinity(loaded, tmp_path).config["algorithm"]["algorithm_type"] == "rloo"


def test_checkpoint_retention_is_trinitys(trinity_experiment, tmp_path):
    """Trinity deletes its own old checkpoints; 0 means "keep all" on both sides."""
    for keep in (0, 3):
        loaded = load_config(
            trinity_experiment(), [f"astuner.trainer_common.max_checkpoints_to_keep={keep}"], backbone="trinity"
        )
        config = to_trinity(loaded, tmp_path).config
        assert config["trainer"]["max_checkpoints_to_keep"] == keep
        assert trinity_issues(config, "x.yaml") == []


def test_multi_timeline_needs_grpo(trinity_experiment, tmp_path):
    loaded = load_config(trinity_experiment(), ["astuner.algorithm.adv_estimator=rloo"], backbone="trinity")
    with pytest.raises(ConfigError, match=r"adv_estimator: = 'rloo' has no step-wise variant in Trinity"):
        to_trinity(loaded, tmp_path)


def test_the_algorithm_pins(trinity_experiment, tmp_path):
    """Trinity keys astuner sets so that Trinity computes astuner's algorithm (astuner/algo/semantics.py)."""
    single = "astuner.rollout.multi_turn.max_sample_per_task=1"
    loaded = load_config(trinity_experiment(), [single, "astuner.algorithm.kl_coef=0.05"], backbone="trinity")
    a = to_trinity(loaded, tmp_path).config["algorithm"]
    assert (a["kl_loss_fn"], a["kl_loss_fn_args"], a["kl_penalty_fn"]) == ("low_var_kl", {"kl_coef": 0.05}, "none")
    assert (a["policy_loss_fn"], a["loss_agg_mode"], a["entropy_loss_fn"], a["bypass_old_logprobs"]) == (
        "ppo",
        "token-mean",
        "none",
        True,
    )
    assert a["policy_loss_fn_args"] == {"clip_range_low": 0.2, "clip_range_high": 0.2, "clip_ratio_c": 3.0}
    assert (a["algorithm_type"], a["advantage_fn"]) == ("grpo", "grpo")
    buffer = to_trinity(loaded, tmp_path).config["buffer"]
    assert (buffer["batch_size"], buffer["train_batch_size"]) == (2, 4)  # one optimizer step per 2 tasks x 2 repeats


def test_grpo_without_std_is_trinitys_opmd_advantage(trinity_experiment, tmp_path):
    overrides = ["astuner.rollout.multi_turn.max_sample_per_task=1", "astuner.algorithm.norm_adv_by_std=false"]
    t = to_trinity(load_config(trinity_experiment(), overrides, backbone="trinity"), tmp_path)
    assert (t.config["algorithm"]["algorithm_type"], t.config["algorithm"]["advantage_fn"]) == ("grpo", "opmd")
    assert not any("norm_adv_by_std" in w for w in t.warnings)
    cluster = {"node_num": 1, "gpu_per_node": 2}
    assert trinity_issues({**t.config, "cluster": cluster}, "exp.yaml") == []  # Trinity takes the combination


def test_step_wise_grpo_cannot_skip_the_std(trinity_experiment, tmp_path):
    loaded = load_config(trinity_experiment(), ["astuner.algorithm.norm_adv_by_std=false"], backbone="trinity")
    with pytest.raises(ConfigError, match=r"norm_adv_by_std: = false: Trinity's step-wise GRPO"):
        to_trinity(loaded, tmp_path)


def test_explicit_trinity_key_wins_and_is_reported(trinity_experiment, tmp_path):
    loaded = load_config(trinity_experiment(), ["+trinity.algorithm.repeat_times=8"], backbone="trinity")
    t = to_trinity(loaded, tmp_path)
    assert t.config["algorithm"]["repeat_times"] == 8
    assert any("trinity.algorithm.repeat_times = 8" in w and "astuner.rollout.num_repeat = 2" in w for w in t.warnings)


def test_wiring_keys_cannot_be_overridden(trinity_experiment, tmp_path):
    loaded = load_config(trinity_experiment(), ["+trinity.checkpoint_root_dir=/elsewhere"], backbone="trinity")
    with pytest.raises(ConfigError, match=r"trinity.checkpoint_root_dir: = '/elsewhere' is set by astuner"):
        to_trinity(loaded, tmp_path)


def test_key_without_trinity_equivalent_is_warned_by_name(trinity_experiment, tmp_path):
    loaded = load_config(trinity_experiment(), ["astuner.rollout.hang_timeout=30"], backbone="trinity")
    t = to_trinity(loaded, tmp_path)
    assert any(w.startswith("astuner.rollout.hang_timeout has no effect with --backbone=trinity") for w in t.warnings)


def test_generated_config_passes_trinitys_own_check(tmp_path):
    loaded = load_config(TUTORIAL, backbone="trinity")
    assert trinity_issues(to_trinity(loaded, tmp_path).config, "math_agent.yaml") == []


def test_trinitys_check_rejects_with_one_line(tmp_path):
    loaded = load_config(TUTORIAL, ["astuner.rollout.max_model_len=5000"], backbone="trinity")
    (issue,) = trinity_issues(to_trinity(loaded, tmp_path).config, "math_agent.yaml")
    assert "Trinity-RFT 0.6.0 rejects the translated config" in str(issue)
    assert "(3000 + 10000) exceeds `max_model_len` (5000)" in str(issue) and "\n" not in str(issue)


def test_dry_run_reports_trinitys_rejection_on_one_line(tmp_path):
    """(The passing dry run, handed over from .venv, is test_in_trinity_env.py's.)"""
    argv = ["--conf", str(TUTORIAL), "--backbone=trinity", "--dry-run", "--exp-dir", str(tmp_path)]
    bad = subprocess.run(
        [sys.executable, "-m", "astuner", *argv, "astuner.rollout.max_model_len=5000"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    (line,) = [x for x in bad.stderr.splitlines() if x.startswith("astuner: error:")]
    assert "(trinity): Trinity-RFT 0.6.0 rejects the translated config" in line and "exceeds `max_model_len`" in line


def test_dynamic_sampling_is_refused_with_why(trinity_experiment, tmp_path):
    loaded = load_config(trinity_experiment(), ["astuner.algorithm.dynamic_sampling.enable=true"], backbone="trinity")
    with pytest.raises(ConfigError, match=r"has no Trinity-RFT 0.6.0 equivalent") as err:
        to_trinity(loaded, tmp_path)
    assert "std_threshold" in str(err.value) and "--backbone=debug" in str(err.value)
