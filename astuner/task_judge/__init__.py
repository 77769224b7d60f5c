"""Judges: ``BaseJudge`` and the built-in ones (named in YAML as ``astuner.task_judge.<module>->Class``)."""

from astuner.task_judge.base_judge import BaseJudge

__all__ = ["BaseJudge"]
