"""The whole composed config as workflows and judges see it: read-only, with attribute access.

Why a view and not the dicts: a workflow needs settings of its own (a board size, a turn limit)
and sometimes astuner's (``rollout.max_model_len``). It reads them as
``model_tuner.config.astuner.rollout.max_model_len`` (the typed, frozen ``AstunerConfig``) and
``model_tuner.config.<section>.<key>`` for any other top-level section of the YAML (its own,
verl's, Trinity's). Writing raises, so one episode cannot change what the next one reads, and the
same view is rebuilt unchanged inside the verl and Trinity workers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from astuner.config.schema import AstunerConfig


class ConfigSection(Mapping[str, Any]):
    """A read-only mapping of one config section; keys are also attributes (``section.board_size``).

    Example:
        >>> s = ConfigSection({"game": {"size": 3}}, "config")
        >>> s.game.size, s["game"]["size"]
        (3, 3)
    """

    def __init__(self, data: Mapping[str, Any], path: str):
        object.__setattr__(self, "_data", dict(data))
        object.__setattr__(self, "_path", path)

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key], f"{self._path}.{key}")

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            allowed = ", ".join(map(str, self._data)) or "none"
            raise AttributeError(f"{self._path} has no key {key!r} (keys: {allowed})") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise TypeError(f"{self._path} is read-only (the run's config cannot change while it runs)")

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ConfigSection({self._path}: {self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain containers (safe to change)."""
        return copy.deepcopy(self._data)


def _wrap(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        return ConfigSection(value, path)
    if isinstance(value, list):
        return tuple(_wrap(v, f"{path}[{i}]") for i, v in enumerate(value))
    return value


class ComposedConfig(ConfigSection):
    """The run's whole config: ``.astuner`` (typed, frozen) and every other top-level section.

    Args:
        astuner: the validated, frozen ``astuner:`` tree.
        sections: every other top-level section (user sections, verl's, ``trinity``), as composed.
    """

    def __init__(self, astuner: AstunerConfig, sections: Mapping[str, Any]):
        super().__init__(copy.deepcopy(dict(sections)), "config")
        object.__setattr__(self, "astuner", astuner)

    def __getitem__(self, key: str) -> Any:
        if key == "astuner":
            return self.astuner
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        return iter(["astuner", *self._data])

    def __len__(self) -> int:
        return 1 + len(self._data)

    def __repr__(self) -> str:
        return f"ComposedConfig(sections: {', '.join(self)})"
