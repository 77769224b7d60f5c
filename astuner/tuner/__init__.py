"""The ModelTuner: the trainable model an AgentScope agent talks to."""

from astuner.tuner.model_tuner import ModelTuner

__all__ = ["ModelTuner"]
