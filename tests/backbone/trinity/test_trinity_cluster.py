"""Planning a Trinity run for its cluster: one GPU is Trinity's colocate mode, decided (and shown) by the plan.

The machine's GPUs are read from ``CUDA_VISIBLE_DEVICES`` when set (as Ray and CUDA read them), so
these plans are for one or four GPUs on this CPU machine; nothing starts.
"""

from __future__ import annotations

import pytest

from astuner.backbone.trinity.backbone import TrinityBackbone
from astuner.backbone.trinity.cluster import COLOCATE_FIX_VERSIONS, PLUGIN_DIRS_VAR, plan_cluster
from astuner.backbone.trinity.plugins import PLUGIN_DIR
from astuner.config.errors import ConfigError
from astuner.config.load import load_config
from tests.backbone.trinity.conftest import TUTORIAL


def _plan(tmp_path, monkeypatch, gpus: str, *overrides: str, with_ray: bool = True):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus)
    monkeypatch.delenv(PLUGIN_DIRS_VAR, raising=False)
    loaded = load_config(TUTORIAL, list(overrides), backbone="trinity")
    return TrinityBackbone().plan(loaded, tmp_path / "math_agent", with_ray=with_ray)


def _config(plan):
    import yaml

    return yaml.safe_load(plan.config_text)


def test_one_gpu_runs_the_tutorial_in_colocate_mode_and_says_so(tmp_path, monkeypatch):
    """The tutorial asks for two engines; on one GPU the plan runs one beside the trainer, in one warning line."""
    plan = _plan(tmp_path, monkeypatch, "0")
    c = _config(plan)
    assert c["mode"] == "colocate" and c["cluster"] == {"node_num": 1, "gpu_per_node": 1}
    rollout = c["explorer"]["rollout_model"]
    assert (rollout["engine_num"], rollout["gpu_memory_utilization"]) == (1, 0.25)
    assert c["synchronizer"]["sync_method"] == "memory"
    assert c["explorer"]["runner_per_model"] == 16  # 64 episodes in flight / 4 repeats, all on the one engine
    (line,) = [w for w in plan.warnings if "trinity_only__n_vllm_engine" in w]
    assert line.startswith("astuner.trainer_common.trinity_only__n_vllm_engine = 2 does not fit one GPU")
    assert any("colocate mode" in n for n in plan.notes)
    assert "this machine's 1 GPU(s)" in plan.notes[0]


def test_one_gpu_loads_the_start_up_fix_for_its_trinity_release_only(tmp_path, monkeypatch):
    """The plugin folder goes on TRINITY_PLUGIN_DIRS (before the user's own) only for a release that needs it."""
    monkeypatch.setenv(PLUGIN_DIRS_VAR, "/opt/my_plugins")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    loaded = load_config(TUTORIAL, backbone="trinity")
    plan = TrinityBackbone().plan(loaded, tmp_path / "r", with_ray=True)
    assert plan.child.env[PLUGIN_DIRS_VAR] == f"{PLUGIN_DIR}:/opt/my_plugins"
    assert any("Trinity-RFT #602" in n for n in plan.notes)
    import astuner.backbone.trinity.backbone as backbone

    monkeypatch.setattr(backbone, "trinity_version", lambda: "0.7.0")  # a release that carries the fix
    later = TrinityBackbone().plan(loaded, tmp_path / "r", with_ray=True)
    assert PLUGIN_DIRS_VAR not in later.child.env and not any("#602" in n for n in later.notes)
    assert "0.6.0" in COLOCATE_FIX_VERSIONS


def test_several_gpus_keep_mode_both_and_the_tutorials_engines(tmp_path, monkeypatch):
    plan = _plan(tmp_path, monkeypatch, "0,1,2,3")
    c = _config(plan)
    assert c["mode"] == "both" and c["cluster"] == {"node_num": 1, "gpu_per_node": 4}
    assert c["explorer"]["rollout_model"]["engine_num"] == 2 and c["synchronizer"]["sync_method"] == "nccl"
    assert PLUGIN_DIRS_VAR not in plan.child.env


def test_two_gpus_cannot_hold_two_engines_and_a_trainer(tmp_path, monkeypatch):
    """Trinity's own check says so, on one line, before anything starts."""
    with pytest.raises(ConfigError) as err:
        _plan(tmp_path, monkeypatch, "0,1")
    assert "Trinity-RFT 0.6.0 rejects the translated config" in str(err.value) and "\n" not in str(err.value)


def test_one_gpu_cannot_split_an_engine(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as err:
        _plan(tmp_path, monkeypatch, "0", "astuner.rollout.tensor_model_parallel_size=2")
    assert "astuner.rollout.tensor_model_parallel_size" in str(err.value) and "set it to 1" in str(err.value)


def test_the_users_cluster_keys_win_over_this_machine(tmp_path, monkeypatch):
    plan = _plan(tmp_path, monkeypatch, "0", "+trinity.cluster.node_num=1", "+trinity.cluster.gpu_per_node=8")
    c = _config(plan)
    assert c["mode"] == "both" and c["cluster"] == {"node_num": 1, "gpu_per_node": 8}


def test_a_remote_ray_cluster_is_not_sized_by_this_machine(monkeypatch):
    """Without --with-ray and with RAY_ADDRESS set, the cluster is elsewhere: Trinity counts it when it starts."""
    loaded = load_config(TUTORIAL, backbone="trinity")
    cluster = plan_cluster(loaded, with_ray=False, gpus_here=1, environ={"RAY_ADDRESS": "10.0.0.5:6379"})
    assert not cluster.written and not cluster.colocate and "RAY_ADDRESS=10.0.0.5:6379" in cluster.origin
    here = plan_cluster(loaded, with_ray=True, gpus_here=0, environ={})
    assert not here.written and "no GPU visible here" in here.origin


def test_trinitys_check_keeps_the_colocate_keys_the_plan_shows(tmp_path, monkeypatch):
    """The dry run is the run: Trinity's check, run on the planned config, changes none of the keys shown."""
    from omegaconf import OmegaConf
    from trinity.common.config import Config

    c = _config(_plan(tmp_path, monkeypatch, "0"))
    c["checkpoint_root_dir"] = str(tmp_path / "ckpt")
    checked = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), c))
    checked.check_and_update()
    rollout = checked.explorer.rollout_model
    assert (checked.mode, rollout.engine_num, rollout.gpu_memory_utilization) == ("colocate", 1, 0.25)
    assert str(checked.synchronizer.sync_method.value) == "memory"
