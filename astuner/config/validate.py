"""Check a composed ``astuner:`` tree against the schema and build the typed config.

Why not OmegaConf structured configs: their errors name neither the file nor the nearest valid
key. Here every problem is collected as a ``ConfigIssue`` with a did-you-mean suggestion, the
source file and the allowed values, and all of them are raised together.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from typing import Any

from astuner.config.errors import ConfigError, ConfigIssue
from astuner.config.schema import AstunerConfig
from astuner.records.experiment import EXPERIMENT_NAME

# estimators that compare episodes of one task with each other (they need num_repeat >= 2)
GROUP_ESTIMATORS = ("grpo", "rloo")

Source = Callable[[str], str]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _check_scalar(value: Any, tp: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if typing.get_origin(tp) is list:
        (item_tp,) = typing.get_args(tp)
        return isinstance(value, list) and all(_check_scalar(v, item_tp) for v in value)
    raise TypeError(f"schema type {tp!r} is not supported")  # internal: the schema uses only the above


def all_key_paths(cls: type = AstunerConfig, prefix: str = "astuner") -> list[str]:
    """Every leaf key path of the schema (used for did-you-mean across sections)."""
    out: list[str] = []
    for f in dataclasses.fields(cls):
        tp, _ = _unwrap_optional(_hints(cls)[f.name])
        path = f"{prefix}.{f.name}"
        out.extend(all_key_paths(tp, path) if _is_dataclass_type(tp) else [path])
    return out


def _suggest(key: str, section_path: str, siblings: list[str]) -> str:
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}' ({section_path}.{close[0]})?"
    elsewhere = [p for p in all_key_paths() if p.rsplit(".", 1)[-1] == key]
    if elsewhere:
        return f"this key lives at {elsewhere[0]}"
    return f"allowed keys here: {', '.join(siblings)}"


class _Walker:
    def __init__(self, source: Source):
        self.source = source
        self.issues: list[ConfigIssue] = []

    def issue(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(path, message, self.source(path)))

    def missing(self, path: str, message: str) -> None:
        """A required key left unset: the fix goes into the user's YAML, so name that file, not
        the defaults file whose null was kept."""
        where = self.source(path)
        user_file = getattr(self.source, "display", None)
        if user_file and where not in (user_file, "command line"):
            where = user_file
        self.issues.append(ConfigIssue(path, message, where))

    def build(self, cls: type, data: Any, path: str) -> Any:
        """Return an instance of ``cls`` built from ``data``; record problems and keep defaults for them."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.issue(path, f"must be a mapping of keys, got {data!r}")
            return cls()
        hints = _hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in data:
            if key not in fields:
                self.issue(f"{path}.{key}", f"unknown key; {_suggest(str(key), path, list(fields))}")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            if name not in data:
                continue
            tp, optional = _unwrap_optional(hints[name])
            value = data[name]
            key_path = f"{path}.{name}"
            if _is_dataclass_type(tp):
                kwargs[name] = self.build(tp, value, key_path)
            elif value is None:
                if optional:
                    kwargs[name] = None
                else:
                    self.issue(key_path, f"must not be null; expected {_type_name(tp)} (default {f.default!r})")
            elif self.check_value(key_path, value, tp, f.metadata):
                kwargs[name] = float(value) if tp is float else value
        return cls(**kwargs)

    def check_value(self, path: str, value: Any, tp: Any, meta: Any) -> bool:
        if not _check_scalar(value, tp):
            self.issue(path, f"= {value!r} is not {_type_name(tp)}")
            return False
        choices = meta.get("choices")
        items = value if isinstance(value, list) else [value]
        bad = [v for v in items if choices and v not in choices]
        if bad:
            hint = difflib.get_close_matches(str(bad[0]), [str(c) for c in choices], n=1)
            did_you_mean = f"; did you mean '{hint[0]}'?" if hint else ""
            self.issue(path, f"= {bad[0]!r} is not allowed; choose from {', '.join(choices)}{did_you_mean}")
            return False
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            self.issue(path, f"= {value!r} is out of range; it must be {bounds}")
            return False
        return True


def _cross_checks(cfg: AstunerConfig, w: _Walker) -> None:
    r, tr = cfg.rollout, cfg.task_reader
    if r.max_response_length_in_one_turn > r.max_model_len:
        w.issue(
            "astuner.rollout.max_response_length_in_one_turn",
            f"= {r.max_response_length_in_one_turn} exceeds rollout.max_model_len = {r.max_model_len}; "
            "lower it or raise max_model_len",
        )
    if cfg.data.max_prompt_length >= r.max_model_len:
        w.issue(
            "astuner.data.max_prompt_length",
            f"= {cfg.data.max_prompt_length} leaves no room to generate within rollout.max_model_len = "
            f"{r.max_model_len}; lower it below max_model_len",
        )
    if r.num_repeat < 2 and cfg.algorithm.adv_estimator in GROUP_ESTIMATORS:
        w.issue(
            "astuner.rollout.num_repeat",
            f"= {r.num_repeat} with algorithm.adv_estimator = {cfg.algorithm.adv_estimator}: it compares episodes of "
            "the same task, and a lone episode has no baseline (its advantage would be its raw reward); set "
            "num_repeat >= 2 (or adv_estimator: reinforce_plus_plus)",
        )
    if cfg.algorithm.clip_ratio_c <= 1.0:
        w.issue(
            "astuner.algorithm.clip_ratio_c",
            f"= {cfg.algorithm.clip_ratio_c} must be > 1 (dual clip caps a negative-advantage loss at "
            "clip_ratio_c x |advantage|, above the ordinary clip); the usual value is 3.0",
        )
    if cfg.experiment_name is not None and not EXPERIMENT_NAME.match(cfg.experiment_name):
        w.issue(
            "astuner.experiment_name",
            f"= {cfg.experiment_name!r} must be letters, digits, '.', '_' or '-' "
            "(it names a folder under launcher_record/)",
        )
    if r.agentscope_workflow is None:
        w.missing("astuner.rollout.agentscope_workflow", "is required: name your workflow class as 'module->Class'")
    if cfg.model.path is None:
        w.missing("astuner.model.path", "is required: a local HF model folder or a hub id such as 'Qwen/Qwen2.5-7B'")
    if tr.type == "huggingface_dat_repo" and not tr.huggingface_dat_repo.dataset_path:
        w.missing(
            "astuner.task_reader.huggingface_dat_repo.dataset_path",
            "is required with task_reader.type: huggingface_dat_repo (e.g. 'openai/gsm8k' or a local folder)",
        )
    if tr.type == "dataset_file" and not tr.dataset_file.training_path:
        w.missing(
            "astuner.task_reader.dataset_file.training_path",
            "is required with task_reader.type: dataset_file (a .jsonl or .parquet file)",
        )
    if tr.type == "env_service":
        _check_env_service(cfg, w)
    _check_engine_flags(cfg, w)
    if r.engine.stop_during_update and r.engine.keep_alive:
        w.issue(
            "astuner.rollout.engine.stop_during_update",
            "= true stops the engine at every update, and rollout.engine.keep_alive = true keeps it for a later "
            "run; set one of them to false",
        )
    judge = cfg.task_judge.judge_protocol or ""
    if judge.endswith("->EnvServiceJudge") and tr.type != "env_service":
        w.issue(
            "astuner.task_judge.judge_protocol",
            f"= {judge!r} scores episodes with the environment service's /evaluate; it needs "
            f"task_reader.type: env_service (got {tr.type!r})",
        )


def _check_engine_flags(cfg: AstunerConfig, w: _Walker) -> None:
    """A vLLM flag that has a typed key is set once: by the key, not also in ``engine.extra_args``."""
    e = cfg.rollout.engine
    typed = {"--gpu-memory-utilization": ("gpu_memory_utilization", e.gpu_memory_utilization)}
    typed["--enforce-eager"] = ("enforce_eager", e.enforce_eager)
    for flag, (key, value) in typed.items():
        if value is not None and any(a == flag or a.startswith(flag + "=") for a in e.extra_args):
            w.issue(
                "astuner.rollout.engine.extra_args",
                f"sets {flag}, and so does astuner.rollout.engine.{key} = {value!r}; drop it from extra_args",
            )


def _check_env_service(cfg: AstunerConfig, w: _Walker) -> None:
    es, key = cfg.task_reader.env_service, "astuner.task_reader.env_service"
    if not es.env_type:
        w.issue(
            f"{key}.env_type", "is required with task_reader.type: env_service (the server's kind, e.g. 'appworld')"
        )
    if not es.env_url.startswith(("http://", "https://")):
        w.issue(f"{key}.env_url", f"= {es.env_url!r} is not an http(s) URL; e.g. http://127.0.0.1:8080")
    url_port = "{port}" in es.env_url
    cmd_port = any("{port}" in arg for arg in es.launch_command)
    if url_port and not es.launch_command:
        w.issue(
            f"{key}.env_url",
            f"= {es.env_url!r} has '{{port}}', which only launch_command fills in; give the running server's port "
            "or set launch_command",
        )
    elif es.launch_command and url_port != cmd_port:
        has, lacks = ("launch_command", "env_url") if cmd_port else ("env_url", "launch_command")
        w.issue(
            f"{key}.launch_command",
            f"{has} has '{{port}}' but {lacks} does not; put '{{port}}' in both (astuner picks a free port) "
            "or in neither",
        )
    if es.ready_path is not None and not es.ready_path.startswith("/"):
        w.issue(f"{key}.ready_path", f"= {es.ready_path!r} must be a path starting with '/', e.g. /health")


def backbone_only_keys(cls: type = AstunerConfig, prefix: str = "astuner") -> dict[str, tuple[str, ...]]:
    """Key paths that take effect on some backbones only, with those backbones."""
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(cls):
        tp, _ = _unwrap_optional(_hints(cls)[f.name])
        path = f"{prefix}.{f.name}"
        if _is_dataclass_type(tp):
            out.update(backbone_only_keys(tp, path))
        elif "backbones" in f.metadata:
            out[path] = f.metadata["backbones"]
    return out


def validate_astuner_tree(data: Any, source: Source) -> AstunerConfig:
    """Validate the ``astuner:`` subtree and return the typed config.

    Args:
        data: the composed ``astuner`` mapping (plain Python containers).
        source: maps a key path to the place it was set, for error messages.

    Raises:
        ConfigError: with every problem found.
    """
    w = _Walker(source)
    cfg = w.build(AstunerConfig, data, "astuner")
    if not w.issues:
        _cross_checks(cfg, w)
    if w.issues:
        raise ConfigError(w.issues)
    return cfg
