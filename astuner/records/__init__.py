"""Experiment records under ``launcher_record/<experiment>/``."""

from astuner.records.atomic import atomic_write_text
from astuner.records.experiment import Experiment, RecordsError, open_experiment

__all__ = ["Experiment", "RecordsError", "atomic_write_text", "open_experiment"]
