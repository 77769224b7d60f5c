"""Helpers shared by the backbone config translations (``verl/config.py``, ``trinity/config.py``).

Both translations follow one recipe: an explicit table of astuner keys to backbone keys, the
backbone's own keys from the YAML passed through, and a warning for every astuner key the user set
that cannot take effect there. These helpers are the pieces of that recipe that do not depend on
the backbone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from astuner.config.errors import ConfigIssue
from astuner.config.load import LoadedConfig, flatten

# astuner keys (below ``astuner.``) that take effect inside the backbone adapters (they run astuner's
# own rollout code: workflow, judge, madness, merging, per-turn length, episode timeout), or that
# shape the run itself (tasks, names), so they need no key of the backbone.
ADAPTER_KEYS = (
    "experiment_name",
    "backbone",
    "task_reader",
    "rollout.agentscope_workflow",
    "rollout.agent_madness_reward",
    "rollout.compute_madness_checklist",
    "rollout.multi_turn.max_sample_per_task",
    "rollout.multi_turn.max_steps",
    "rollout.max_response_length_in_one_turn",
    "rollout.episode_timeout",
    "rollout.gateway",
    "task_judge",
)


def get_key(cfg: Any, dotted: str) -> Any:
    """The typed config value at ``dotted`` (e.g. ``rollout.num_repeat``); a renamed field raises here."""
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (the inverse of ``astuner.config.load.flatten``)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def no_effect_warnings(loaded: LoadedConfig, no_effect: Mapping[str, str], backbone: str) -> list[str]:
    """One line per ``astuner.<key>`` in ``no_effect`` that the user set, with what to do instead."""
    return [
        f"astuner.{key} has no effect with --backbone={backbone} ({instead})"
        for key, instead in no_effect.items()
        if f"astuner.{key}" in loaded.user_keys
    ]


def user_keys_under(loaded: LoadedConfig, sections: Iterable[str], tree: Mapping[str, Any] | None = None) -> dict:
    """Flat ``{key: value}`` of the keys below ``sections`` that the user set (YAML or command line).

    ``tree`` defaults to the whole composed config; pass a subtree (e.g. ``loaded.tree["trinity"]``)
    with ``sections`` relative to it, and the user keys are matched below that subtree's name.
    """
    sections = tuple(sections)
    source = loaded.tree if tree is None else tree
    flat = flatten({k: v for k, v in source.items() if k in sections})
    return {k: v for k, v in flat.items() if any(k == u or k.startswith(u + ".") for u in loaded.user_keys)}


def wiring_clashes(
    loaded: LoadedConfig, user: Mapping[str, Any], wired: Iterable[str], prefix: str, purpose: str
) -> list[ConfigIssue]:
    """An issue per user key at or below a wiring key (astuner owns those: the run breaks without them).

    ``prefix`` is how the user writes the backbone's keys (``""`` for verl's top-level sections,
    ``"trinity."`` for Trinity); ``purpose`` says what astuner connects with them.
    """
    wired = tuple(wired)
    return [
        ConfigIssue(
            f"{prefix}{k}",
            f"= {user[k]!r} is set by astuner to connect {purpose}; remove it",
            f"{loaded.yaml_path.name} or command line",
        )
        for k in sorted(user)
        if any(k == w or k.startswith(w + ".") for w in wired)
    ]


def override_notes(
    loaded: LoadedConfig, user: Mapping[str, Any], values: Mapping[str, Any], origin: Mapping[str, str], prefix: str
) -> list[str]:
    """A line per backbone key the user set explicitly that replaces a translated astuner key."""
    return [
        f"{prefix}{k} = {user[k]!r} (set in {loaded.yaml_path.name} or on the command line) overrides "
        f"{origin[k]} = {values[k]!r}"
        for k in sorted(set(user) & set(origin))
        if user[k] != values[k]
    ]
