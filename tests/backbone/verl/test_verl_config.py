"""Config translation (astuner -> verl's ppo_trainer), the --dry-run, task rows and the owned Ray head."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from astuner.backbone.translate import ADAPTER_KEYS
from astuner.backbone.verl.config import NO_EFFECT, TO_VERL, to_verl
from astuner.config.errors import ConfigError
from astuner.config.load import load_config
from astuner.config.validate import all_key_paths, backbone_only_keys
from tests.backbone.verl.conftest import REPO

TUTORIAL = REPO / "tutorial" / "example_math_agent" / "math_agent.yaml"


def test_every_astuner_key_is_accounted_for():
    """A new schema key must be mapped, used by the adapter, reported as no-effect, or marked per backbone."""
    only = backbone_only_keys()
    covered = set(TO_VERL) | set(NO_EFFECT)
    missing = []
    for path in all_key_paths():
        key = path.removeprefix("astuner.")
        if path in only or key in covered or any(key == a or key.startswith(a + ".") for a in ADAPTER_KEYS):
            continue
        missing.append(path)
    assert not missing, f"add these keys to astuner/backbone/verl/config.py: {missing}"


def test_tutorial_translation_maps_every_key(tmp_path):
    loaded = load_config(TUTORIAL, backbone="verl")
    t = to_verl(loaded, tmp_path / "math_agent")
    c, r = t.config, t.config.actor_rollout_ref.rollout
    assert (r.n, r.temperature, r.max_num_seqs, r.tensor_model_parallel_size, r.max_model_len) == (4, 0.7, 40, 1, 13000)
    assert (c.data.train_batch_size, c.data.max_prompt_length, c.data.max_response_length) == (264, 3000, 10000)
    assert (r.prompt_length, r.response_length) == (3000, 10000)  # verl's own interpolations follow
    assert (c.trainer.total_epochs, c.trainer.save_freq, c.trainer.test_freq) == (99999, 99999, 99999)
    assert c.actor_rollout_ref.model.path == "Qwen/Qwen2.5-14B-Instruct"
    assert (c.trainer.project_name, c.trainer.experiment_name) == ("math_agent", "math_agent")
    assert c.trainer.default_local_dir == str(tmp_path / "math_agent" / "checkpoints")
    assert r.agent.default_agent_loop == "astuner"
    assert r.agent.agent_loop_config_path == str(tmp_path / "math_agent" / "verl" / "agent_loops.yaml")
    assert c.actor_rollout_ref.actor.ppo_mini_batch_size == 264  # one optimizer step per batch (x rollout.n)
    assert c.algorithm.adv_estimator == "grpo" and c.algorithm.norm_adv_by_std_in_grpo is True
    assert any(w.startswith("astuner.rollout.max_env_worker has no effect") for w in t.warnings)
    assert list(c.trainer.logger) == ["console", "tensorboard", "file"]
    env = c.ray_kwargs.ray_init.runtime_env.env_vars
    assert env.VERL_FILE_LOGGER_PATH == str(tmp_path / "math_agent" / "verl" / "metrics.jsonl")


def test_explicit_verl_key_wins_and_is_reported(verl_experiment, tmp_path):
    loaded = load_config(verl_experiment(), ["+actor_rollout_ref.rollout.n=8"], backbone="verl")
    t = to_verl(loaded, tmp_path)
    assert t.config.actor_rollout_ref.rollout.n == 8
    assert any("actor_rollout_ref.rollout.n = 8" in w and "astuner.rollout.num_repeat = 2" in w for w in t.warnings)


def test_checkpoint_retention_is_verls(verl_experiment, tmp_path):
    """verl keeps actor and critic checkpoints apart and says "keep all" with null, astuner with 0."""
    for keep, expected in ((0, None), (3, 3)):
        override = f"astuner.trainer_common.max_checkpoints_to_keep={keep}"
        loaded = load_config(verl_experiment(), [override], backbone="verl")
        trainer = to_verl(loaded, tmp_path).config.trainer
        assert (trainer.max_actor_ckpt_to_keep, trainer.max_critic_ckpt_to_keep) == (expected, expected)


def test_keys_astuner_wires_cannot_be_set(verl_experiment, tmp_path):
    loaded = load_config(verl_experiment(), ["+data.train_files=/x.parquet"], backbone="verl")
    with pytest.raises(ConfigError, match=r"data.train_files: = '/x.parquet' is set by astuner .*; remove it"):
        to_verl(loaded, tmp_path)


def test_the_algorithm_pins(verl_experiment, tmp_path):
    """verl keys astuner sets so that verl computes astuner's algorithm (astuner/algo/semantics.py)."""
    loaded = load_config(verl_experiment(), ["astuner.algorithm.kl_coef=0.05"], backbone="verl")
    c = to_verl(loaded, tmp_path).config
    a = c.actor_rollout_ref.actor
    assert (a.ppo_mini_batch_size, a.ppo_epochs, c.data.train_batch_size) == (2, 1, 2)
    assert (a.policy_loss.loss_mode, a.loss_agg_mode, a.clip_ratio_c, a.entropy_coeff) == (
        "vanilla",
        "token-mean",
        3.0,
        0,
    )
    assert (a.use_kl_loss, a.kl_loss_coef, a.kl_loss_type, c.algorithm.use_kl_in_reward) == (
        True,
        0.05,
        "low_var_kl",
        False,
    )
    assert c.algorithm.rollout_correction.bypass_mode is True  # the ratio is against the engine's logprobs


def test_a_verl_key_that_changes_the_algorithm_is_reported(verl_experiment, tmp_path):
    loaded = load_config(
        verl_experiment(), ["+actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean"], backbone="verl"
    )
    t = to_verl(loaded, tmp_path)
    assert any(
        "loss_agg_mode = 'seq-mean-token-mean'" in w and "astuner.algorithm.clip_ratio_c" in w for w in t.warnings
    )


def test_the_legacy_trainer_cannot_follow(verl_experiment, tmp_path):
    path, legacy = verl_experiment(), "+trainer.use_v1=false"
    with pytest.raises(ConfigError, match=r"trainer.use_v1: = false: verl's legacy trainer cannot leave a failed"):
        to_verl(load_config(path, [legacy], backbone="verl"), tmp_path)
    many = "astuner.rollout.multi_turn.max_sample_per_task=4"
    with pytest.raises(ConfigError, match=r"nor take one sample per timeline \(.*max_sample_per_task = 4\)"):
        to_verl(load_config(path, [legacy, many], backbone="verl"), tmp_path)
    to_verl(load_config(path, [many], backbone="verl"), tmp_path)  # v1 (verl's default) takes one per timeline


def test_rloo_with_several_timelines_is_rejected(verl_experiment, tmp_path):
    many = ["astuner.rollout.multi_turn.max_sample_per_task=2", "astuner.algorithm.adv_estimator=rloo"]
    with pytest.raises(ConfigError, match=r"adv_estimator: = 'rloo' .* counts every timeline of an episode"):
        to_verl(load_config(verl_experiment(), many, backbone="verl"), tmp_path)
    rpp = ["astuner.rollout.multi_turn.max_sample_per_task=2", "astuner.algorithm.adv_estimator=reinforce_plus_plus"]
    to_verl(load_config(verl_experiment(), rpp, backbone="verl"), tmp_path)  # no groups: nothing counted twice


def test_verl_own_check_runs_before_anything_starts(verl_experiment, tmp_path):
    loaded = load_config(verl_experiment(), ["actor_rollout_ref.actor.ppo_mini_batch_size=16"], backbone="verl")
    with pytest.raises(ConfigError, match=r"verl 0.9.1 rejects.*train_batch_size \(2\) must be >= .*\(16\)"):
        to_verl(loaded, tmp_path)


def test_dry_run_prints_verl_config_and_warns(capsys, tmp_path):
    from astuner.cli import main

    code = main(["--conf", str(TUTORIAL), "--backbone=verl", "--dry-run", "--exp-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith("model_engine:")  # stdout is the config alone (verl's own prints are kept out)
    assert "agent_loop_config_path: " + str(tmp_path / "math_agent" / "verl" / "agent_loops.yaml") in out
    assert "ppo_mini_batch_size" in out and "train_batch_size: 264" in out
    assert "astuner.rollout.max_env_worker has no effect with --backbone=verl" in err
    assert not (tmp_path / "math_agent").exists()  # a dry run writes nothing


def test_task_rows_round_trip_through_verl_dataset(tmp_path, smollm2_tokenizer_dir):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from astuner.backbone.verl.tasks import task_from_extra_info, task_rows, write_parquet
    from astuner.task_reader.task import Task

    tasks = [Task("t-0", "What is 1+1?", metadata={"ground_truth": "2", "row": {"a": [1, 2]}}), Task("t-1", "3*3?")]
    path = write_parquet(task_rows(tasks, "train", "astuner"), tmp_path / "train.parquet")
    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 256, "return_raw_chat": True})
    dataset = RLHFDataset(str(path), AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir)), config)
    rows = [dataset[i] for i in range(len(dataset))]
    assert [task_from_extra_info(r["extra_info"]) for r in rows] == tasks
    assert rows[0]["raw_prompt"] == [{"role": "user", "content": "What is 1+1?"}]
    assert [r["index"] for r in rows] == [0, 1] and rows[0]["agent_name"] == "astuner"


def test_ray_head_is_owned_joined_with_its_own_token_and_stopped_by_pid(tmp_path, monkeypatch):
    from astuner.backbone.ray_head import RayHead

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a fresh machine: no ~/.ray/auth_token
    with RayHead(tmp_path / "ray.log", num_cpus=1) as head:
        pid = head.pid
        assert head.address.startswith("127.0.0.1:")
        os.killpg(pid, 0)  # alive, leading its own group
        code = "import ray; ray.init(); print(ray.cluster_resources()['CPU']); ray.shutdown()"
        env = {**os.environ, **head.client_env}
        joined = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
        assert joined.stdout.strip().endswith("1.0"), joined.stderr[-3000:]
        closing = time.monotonic()
    # the head is signalled alone and drains while its GCS lives (signalled together it waits 30 s for it)
    assert time.monotonic() - closing < 20
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole group is gone once close() returns
    assert not (tmp_path / "home" / ".ray").exists()  # the token is the head's own, not a file of the user
    pointer = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    assert not pointer.is_file() or not pointer.read_text().strip().endswith(":" + head.address.rsplit(":", 1)[1])


def test_translated_keys_are_plain_dataclass_values():
    """The table reads typed config values; a renamed schema field fails here, not at run time."""
    from astuner.backbone.translate import get_key as _get
    from astuner.config.schema import AstunerConfig

    cfg = AstunerConfig()
    for key in TO_VERL:
        _get(cfg, key)
    assert dataclasses.is_dataclass(cfg)


def test_dynamic_sampling_is_refused_with_what_to_do(verl_experiment, tmp_path):
    """verl's own group filter refills without a cap, so astuner's capped dynamic sampling is not mapped."""
    on = "astuner.algorithm.dynamic_sampling.enable=true"
    with pytest.raises(ConfigError, match=r"dynamic_sampling.enable: = true is not mapped to verl yet") as err:
        to_verl(load_config(verl_experiment(), [on], backbone="verl"), tmp_path)
    assert "max_num_gen_batches" in str(err.value) and "algorithm.filter_groups" in str(err.value)
