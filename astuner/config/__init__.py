"""Config: schema, composition (Hydra), validation and resolution of references."""

from astuner.config.errors import ConfigError, ConfigIssue
from astuner.config.load import LoadedConfig, load_config
from astuner.config.schema import AstunerConfig

__all__ = ["AstunerConfig", "ConfigError", "ConfigIssue", "LoadedConfig", "load_config"]
