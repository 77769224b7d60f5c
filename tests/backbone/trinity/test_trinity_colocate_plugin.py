"""The contract of astuner's Trinity-RFT 0.6.0 colocate start-up fix (plugins/colocate_engine.py, Trinity-RFT #602).

Pinned: the bug is still there in the installed release (the engine goes into a GPU placement
group), every Trinity symbol the plugin uses, and the plugin mechanism that loads it (the variable,
the loader, the explorer loading plugins before it builds its allocator, the variable reaching Ray's
processes). When this file fails after an upgrade, check whether the release fixed #602 (then
delete the plugin and its ``COLOCATE_FIX_VERSIONS`` entry) or moved a symbol.
"""

from __future__ import annotations

import importlib
import inspect

import pytest


def test_the_installed_release_still_reserves_a_gpu_for_the_engine():
    import trinity
    from trinity.common.models.allocator import Allocator, get_model_wrapper

    from astuner.backbone.trinity.cluster import COLOCATE_FIX_VERSIONS

    assert trinity.__version__ in COLOCATE_FIX_VERSIONS
    original = inspect.getsource(Allocator.allocate_bundles) + inspect.getsource(get_model_wrapper)
    assert '"GPU"' in original and "PlacementGroupSchedulingStrategy" in original
    assert "colocate" not in inspect.getsource(importlib.import_module("trinity.common.models.allocator"))


def test_the_symbols_the_plugin_uses():
    from trinity.common.config import ExplorerConfig, InferenceModelConfig
    from trinity.common.models.allocator import Allocator
    from trinity.common.models.model import ModelWrapper
    from trinity.common.models.vllm_model import vLLMRolloutModel

    assert list(inspect.signature(Allocator.__init__).parameters) == ["self", "config"]
    assert "self.config = config" in inspect.getsource(Allocator.__init__)
    assert inspect.iscoroutinefunction(Allocator.create_all_models)
    assert list(inspect.signature(Allocator.create_all_models).parameters) == ["self"]
    assert list(inspect.signature(Allocator.get_actor_name).parameters) == ["self", "role", "engine_id", "node_id"]
    assert inspect.iscoroutinefunction(vLLMRolloutModel.prepare)
    assert callable(vLLMRolloutModel.get_api_server_url)
    assert {"models", "config", "api_address"} <= set(inspect.signature(ModelWrapper.__init__).parameters)
    assert inspect.iscoroutinefunction(ModelWrapper.prepare)
    fields = InferenceModelConfig.__dataclass_fields__
    assert {"engine_id", "node_rank", "ray_actor_name", "ray_namespace", "engine_num"} <= set(fields)
    assert {"rollout_model", "auxiliary_models"} <= set(ExplorerConfig.__dataclass_fields__)


def test_the_plugin_mechanism():
    from trinity.common.config import Config
    from trinity.common.constants import PLUGIN_DIRS_ENV_VAR
    from trinity.explorer.explorer import Explorer
    from trinity.utils import plugin_loader

    from astuner.backbone.trinity.cluster import PLUGIN_DIRS_VAR

    assert PLUGIN_DIRS_ENV_VAR == PLUGIN_DIRS_VAR
    init = inspect.getsource(Explorer.__init__)
    assert init.index("load_plugins()") < init.index("Allocator(")  # the fix is in place before it is used
    assert PLUGIN_DIRS_ENV_VAR in Config().get_envs()  # passed on to every Ray process Trinity starts
    loader = inspect.getsource(plugin_loader.load_plugin_from_dirs)
    assert 'glob("*.py")' in loader and 'startswith("__")' in loader  # our __init__.py is not loaded as a plugin


def test_the_fix_is_installed_on_its_release_and_left_out_on_another(monkeypatch):
    import trinity
    from trinity.common.models.allocator import Allocator

    original = Allocator.create_all_models
    monkeypatch.setattr(Allocator, "create_all_models", original)  # restored after the test
    plugin = importlib.import_module("astuner.backbone.trinity.plugins.colocate_engine")
    monkeypatch.setattr(Allocator, "create_all_models", original)
    assert plugin.install() is True and Allocator.create_all_models is plugin.create_colocated_models
    monkeypatch.setattr(Allocator, "create_all_models", original)
    monkeypatch.setattr(trinity, "__version__", "0.7.0")
    assert plugin.install() is False and Allocator.create_all_models is original


def test_the_colocated_engine_refuses_a_second_engine():
    import asyncio

    from trinity.common.config import ExplorerConfig
    from trinity.common.models.allocator import Allocator

    from astuner.backbone.trinity.plugins.colocate_engine import create_colocated_models

    explorer = ExplorerConfig()
    explorer.rollout_model.engine_num = 2
    with pytest.raises(ValueError, match="exactly one rollout engine"):
        asyncio.run(create_colocated_models(Allocator(explorer)))
