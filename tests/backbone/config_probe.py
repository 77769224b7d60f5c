"""What a test workflow read from the run's config, returned as its output metadata (verl and Trinity tests)."""

from __future__ import annotations


def seen(model_tuner) -> dict:
    """A user section's value, an astuner key and the tuner's turn budget, as the workflow saw them."""
    cfg = model_tuner.config
    return {
        "my_game_level": cfg.my_game.level if "my_game" in cfg else None,
        "max_steps": cfg.astuner.rollout.multi_turn.max_steps,
        "calls_left": model_tuner.calls_left,
    }
