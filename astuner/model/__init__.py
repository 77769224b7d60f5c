"""Models: where the policy's weights come from (local folder, hub id, or an embedded default)."""

from astuner.model.embedded import EmbeddedModelError, materialize
from astuner.model.resolve import ModelPathError, resolve_model_path

__all__ = ["EmbeddedModelError", "ModelPathError", "materialize", "resolve_model_path"]
