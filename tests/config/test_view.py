"""The read-only view of the whole config that workflows and judges get (``model_tuner.config``)."""

from __future__ import annotations

import pytest

from astuner.config.schema import AstunerConfig, FrozenConfigError, freeze
from astuner.config.view import ComposedConfig


def test_sections_read_as_attributes_and_items_and_cannot_be_written():
    view = ComposedConfig(freeze(AstunerConfig()), {"game": {"board_size": 3, "opponents": [{"level": 2}]}})
    assert view.game.board_size == 3 and view["game"]["board_size"] == 3
    assert view.game.opponents[0].level == 2 and isinstance(view.game.opponents, tuple)
    assert view.astuner.rollout.max_model_len == 13000 and list(view) == ["astuner", "game"]
    with pytest.raises(AttributeError, match="config.game has no key 'size' \\(keys: board_size, opponents\\)"):
        _ = view.game.size
    with pytest.raises(TypeError, match="config.game is read-only"):
        view.game.board_size = 4
    with pytest.raises(FrozenConfigError, match="RolloutConfig.max_model_len: the loaded config is read-only"):
        view.astuner.rollout.max_model_len = 1
    copy = view.game.to_dict()
    copy["board_size"] = 9
    assert view.game.board_size == 3


def test_an_unfrozen_config_stays_writable_and_freeze_covers_every_level():
    cfg = AstunerConfig()
    cfg.rollout.num_repeat = 8  # tests and builders may write before freezing
    freeze(cfg)
    with pytest.raises(FrozenConfigError):
        cfg.task_reader.env_service.env_url = "http://127.0.0.1:1"
