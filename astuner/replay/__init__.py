"""Record & replay: re-run recorded episodes on their recorded LLM replies, with no engine.

From the CLI: ``astuner --conf X.yaml --backbone=debug astuner.debug.replay=<trajectories/step_N.jsonl>``;
from pytest: ``replay_step(load_config("X.yaml"), path).identical``.
"""

from astuner.replay.engine import ReplayDiverged, ReplayEngine
from astuner.replay.step import ReplayError, ReplayReport, replay_step

__all__ = ["ReplayDiverged", "ReplayEngine", "ReplayError", "ReplayReport", "replay_step"]
