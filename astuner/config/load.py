"""Compose a user's YAML with astuner's defaults (Hydra), apply overrides, validate, resolve.

The seed YAML names its defaults with ``hydra.searchpath: [file://astuner/default_config, ...]``.
Hydra would resolve those against the working directory, which breaks as soon as the user runs
from another folder or from an installed wheel. We rewrite every ``file://astuner/...`` entry to
the installed package's own folder, and any other relative ``file://`` entry to the YAML's folder,
then let Hydra compose as usual (defaults list, ``_self_``, override grammar).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from astuner.config.errors import ConfigError, ConfigIssue
from astuner.config.resolve import resolve_references
from astuner.config.schema import BACKBONES, AstunerConfig, freeze
from astuner.config.validate import backbone_only_keys, validate_astuner_tree
from astuner.config.view import ComposedConfig

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = PACKAGE_DIR / "default_config"
DEFAULT_FILES = (
    DEFAULT_CONFIG_DIR / "astuner_default.yaml",
    DEFAULT_CONFIG_DIR / "verl" / "verl_default.yaml",
    DEFAULT_CONFIG_DIR / "trinity" / "trinity_default.yaml",
)
# Top-level sections of verl's ppo_trainer config that a YAML may pass through to verl.
VERL_SECTIONS = (
    "actor_rollout_ref",
    "data",
    "critic",
    "custom_reward_function",
    "reward_model",
    "sandbox_fusion",
    "reward",
    "algorithm",
    "distillation",
    "transfer_queue",
    "trainer",
    "global_profiler",
    "skip",
    "ray_kwargs",
)
TOP_LEVEL = ("astuner", "trinity", *VERL_SECTIONS)


@dataclass(frozen=True)
class LoadedConfig:
    """A composed, validated and resolved experiment config: the one copy every backbone plans from.

    Attributes:
        yaml_path: the user's YAML, absolute.
        cwd: the working directory the CLI resolved once (relative references were tried against it);
            nothing below the CLI reads the process's working directory.
        astuner: the typed ``astuner:`` tree (paths made absolute, backbone applied), frozen.
        sections: every other top-level section as composed (verl's, ``trinity``, the user's own).
        user_keys: dotted paths the user set in the YAML or on the command line.
        warnings: keys that take no effect on the chosen backbone, and similar notices.

    Why frozen: a run that needs a value known only while it runs (the env server's port) derives
    a new config with ``replace_astuner`` and hands that on; nothing writes into this one.
    """

    yaml_path: Path
    cwd: Path
    astuner: AstunerConfig
    sections: Mapping[str, Any] = field(default_factory=dict)
    user_keys: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()

    @property
    def backbone(self) -> str:
        return self.astuner.backbone

    @property
    def experiment_name(self) -> str:
        return self.astuner.experiment_name or self.yaml_path.stem

    @property
    def tree(self) -> dict[str, Any]:
        """The whole config as plain containers (a fresh copy), ``astuner`` first."""
        return {"astuner": dataclasses.asdict(self.astuner), **copy.deepcopy(dict(self.sections))}

    def composed(self) -> ComposedConfig:
        """The read-only view workflows and judges get (``model_tuner.config``)."""
        return ComposedConfig(self.astuner, self.sections)

    def replace_astuner(self, cfg: AstunerConfig) -> LoadedConfig:
        """This config with another (changed) ``astuner:`` tree, frozen in turn."""
        return dataclasses.replace(self, astuner=freeze(cfg))

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(OmegaConf.create(self.tree))


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (empty mappings are leaves)."""
    if not isinstance(data, dict) or not data:
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _has_path(flat: dict[str, Any], path: str) -> bool:
    return any(k == path or k.startswith(path + ".") or path.startswith(k + ".") for k in flat)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (the later one would silently win)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, display: str) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(ConfigIssue("(file)", f"is not valid YAML{where}: {problem}", display)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(ConfigIssue("(file)", f"cannot be read: {exc}", display)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(ConfigIssue("(file)", f"must hold a mapping at the top, got {type(data).__name__}", display))
    return data


def _searchpath(raw: dict[str, Any], yaml_dir: Path, display: str) -> list[str]:
    entries = (raw.get("hydra") or {}).get("searchpath") or []
    if not isinstance(entries, list):
        raise ConfigError(ConfigIssue("hydra.searchpath", "must be a list of 'file://...' or 'pkg://...'", display))
    out = []
    for entry in entries:
        entry = str(entry)
        if entry.startswith("file://"):
            rel = entry[len("file://") :]
            if rel == "astuner" or rel.startswith("astuner/"):
                path = PACKAGE_DIR.parent / rel  # shipped with the installed package, never the CWD
            else:
                path = Path(rel) if Path(rel).is_absolute() else yaml_dir / rel
            if not path.is_dir():
                raise ConfigError(
                    ConfigIssue("hydra.searchpath", f"folder {path} (from '{entry}') does not exist", display)
                )
            out.append(f"file://{path.resolve()}")
        else:
            out.append(entry)
    return out


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0].strip()


def _hydra_override(override: str) -> str:
    """Quote a class-reference value: Hydra's override grammar rejects '>' in unquoted strings."""
    key, _, value = override.partition("=")
    if "->" in value and value[:1] not in "'\"[{":
        return f"{key}={_quote(value)}"
    return override


def _compose(yaml_path: Path, display: str, searchpath: list[str], overrides: list[str]) -> dict[str, Any]:
    hydra_overrides = [f"hydra.searchpath=[{','.join(_quote(s) for s in searchpath)}]"]
    hydra_overrides += [_hydra_override(o) for o in overrides]
    try:
        with initialize_config_dir(config_dir=str(yaml_path.parent), version_base=None):
            cfg = compose(config_name=yaml_path.stem, overrides=hydra_overrides)
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(_compose_issue(exc, display, overrides)) from None


def _compose_issue(exc: Exception, display: str, overrides: list[str]) -> ConfigIssue:
    text = " ".join(str(exc).split())
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        key = m.group(1)
        parent, _, leaf = key.rpartition(".")
        hint = ""
        if parent.startswith("astuner") or key.startswith("astuner"):
            from astuner.config.validate import all_key_paths

            close = difflib.get_close_matches(key, all_key_paths(), n=1, cutoff=0.8)
            hint = f"; did you mean '{close[0]}'?" if close else ""
        return ConfigIssue(
            key, f"unknown key in override '{key}=...'{hint} (prefix '+' to add a new key)", "command line"
        )
    m = re.search(r"Could not find '([^']+)'", text) or re.search(r"Could not load '([^']+)'", text)
    if m:
        return ConfigIssue("defaults", f"config '{m.group(1)}' not found in hydra.searchpath", display)
    if any(o for o in overrides if o.split("=", 1)[0].strip() in text) or "override" in text.lower():
        return ConfigIssue("(override)", text.split(" Key:")[0], "command line")
    return ConfigIssue("(composition)", text, display)


class _Provenance:
    """Answers 'where was this key set?' for error messages: overrides, then the YAML, then defaults."""

    def __init__(self, display: str, raw: dict[str, Any], overrides: list[str]):
        self.display = display
        self.override_keys = {_override_key(o) for o in overrides}
        self.user = flatten({k: v for k, v in raw.items() if k not in ("hydra", "defaults")})
        self.defaults = [(str(p), flatten(_read_yaml(p, str(p)))) for p in DEFAULT_FILES]

    def __call__(self, path: str) -> str:
        if any(path == k or path.startswith(k + ".") for k in self.override_keys):
            return "command line"
        if _has_path(self.user, path):
            return self.display
        for name, flat in reversed(self.defaults):
            if _has_path(flat, path):
                return name
        return self.display

    def user_keys(self) -> set[str]:
        return set(self.user) | self.override_keys


def _one_edit_apart(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]])
        return len(diff) == 1 or swapped
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _top_level_issues(tree: dict[str, Any], source: _Provenance) -> list[ConfigIssue]:
    """A top-level section one edit away from astuner's or a backbone's is a typo; any other is the user's own.

    Why user sections are allowed: a workflow needs settings of its own (``model_tuner.config.<section>``).
    """
    issues = []
    for key in tree:
        name = str(key)
        if name in TOP_LEVEL or name == "hydra":
            continue
        close = [t for t in TOP_LEVEL if _one_edit_apart(name.lower(), t)]
        if close:
            issues.append(
                ConfigIssue(
                    name,
                    f"unknown top-level section; did you mean '{close[0]}'? (a section of your own needs a name "
                    "that is not one edit away from astuner's or a backbone's)",
                    source(name),
                )
            )
    return issues


def _backbone_warnings(cfg: AstunerConfig, user_keys: set[str], source: _Provenance) -> list[str]:
    backbone, out = cfg.backbone, []
    only = backbone_only_keys()
    for key in sorted(user_keys):
        head = key.split(".", 1)[0]
        if key in only and backbone not in only[key]:
            needs = " or ".join(f"--backbone={b}" for b in only[key])
            out.append(f"{source(key)}: {key} has no effect with --backbone={backbone} (only with {needs})")
        elif head == "trinity" and backbone != "trinity":
            out.append(f"{source(key)}: {key} has no effect with --backbone={backbone} (only with --backbone=trinity)")
        elif head in VERL_SECTIONS and backbone != "verl":
            out.append(f"{source(key)}: {key} has no effect with --backbone={backbone} (only with --backbone=verl)")
    return out


def load_config(
    yaml_file: str | os.PathLike[str],
    overrides: list[str] | None = None,
    backbone: str | None = None,
    cwd: Path | None = None,
) -> LoadedConfig:
    """Compose, validate and resolve an experiment YAML.

    Args:
        yaml_file: the user's YAML, as typed (used verbatim in messages).
        overrides: Hydra-style ``key=value`` overrides, e.g. ``astuner.rollout.num_repeat=8``.
        backbone: the ``--backbone`` flag; None keeps ``astuner.backbone``.
        cwd: the working directory for relative references (default: the process's).

    Raises:
        ConfigError: every problem found, one line each.
    """
    overrides = list(overrides or [])
    cwd = (cwd or Path.cwd()).resolve()
    display = str(yaml_file)
    yaml_path = (cwd / Path(yaml_file).expanduser()).resolve()
    if not yaml_path.is_file():
        raise ConfigError(ConfigIssue("--conf", f"file {display} not found (looked at {yaml_path})", "command line"))
    if yaml_path.suffix not in (".yaml", ".yml"):
        raise ConfigError(ConfigIssue("--conf", f"{display} must be a .yaml or .yml file", "command line"))
    if backbone is not None and backbone not in BACKBONES:
        raise ConfigError(
            ConfigIssue("--backbone", f"= {backbone!r} is not one of {', '.join(BACKBONES)}", "command line")
        )
    for o in overrides:
        if "=" not in o:
            raise ConfigError(
                ConfigIssue(o, "is not an override; write KEY=VALUE, e.g. astuner.rollout.num_repeat=8", "command line")
            )

    raw = _read_yaml(yaml_path, display)
    source = _Provenance(display, raw, overrides)
    tree = _compose(yaml_path, display, _searchpath(raw, yaml_path.parent, display), overrides)
    issues = _top_level_issues(tree, source)
    try:
        cfg = validate_astuner_tree(tree.get("astuner"), source)
    except ConfigError as exc:
        raise ConfigError(issues + exc.issues) from None
    if issues:
        raise ConfigError(issues)
    if backbone is not None:
        cfg.backbone = backbone
    resolve_references(cfg, yaml_path.parent, cwd, source)
    tree.pop("astuner", None)
    return LoadedConfig(
        yaml_path=yaml_path,
        cwd=cwd,
        astuner=freeze(cfg),
        sections=tree,
        user_keys=frozenset(source.user_keys()),
        warnings=tuple(_backbone_warnings(cfg, source.user_keys(), source)),
    )
