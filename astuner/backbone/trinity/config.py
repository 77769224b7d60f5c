"""Translate an astuner experiment into a Trinity-RFT 0.6.0 config (``trinity.common.config.Config``).

Why a table: every astuner key is accounted for in exactly one place (``TO_TRINITY``,
``ADAPTER_KEYS``, ``NO_EFFECT``, or a schema ``backbones`` mark), and a test fails when a new schema
key is in none of them, so no key is ever dropped silently.

Layering (later wins), as for verl, so astuner's keys take effect and the user keeps the last word:
    1. Trinity's own dataclass defaults;
    2. the composed ``trinity:`` subtree (``trinity_default.yaml`` and the YAML's ``trinity:`` keys);
    3. astuner's translated keys (``TO_TRINITY``) and the wiring (tasks, workflow, records);
    4. ``trinity.*`` keys the user set explicitly (YAML or command line); each one that overrides a
       translated key is reported, naming both keys. Wiring keys cannot be overridden (an error).
Trinity's own checks (``Config.check_and_update``, what ``trinity run`` runs first) validate the
result before anything starts.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astuner.backbone.translate import (
    get_key,
    nest,
    no_effect_warnings,
    override_notes,
    user_keys_under,
    wiring_clashes,
)
from astuner.backbone.trinity.cluster import COLOCATE_ENGINE_MEMORY, TrinityCluster
from astuner.config.errors import ConfigError, ConfigIssue
from astuner.config.load import LoadedConfig
from astuner.config.schema import AstunerConfig

WORKFLOW_CLASS = "astuner.backbone.trinity.workflow.AstunerTrinityWorkflow"
SPEC_ARG = "astuner_run"
# Top-level sections in the order Trinity's own examples write them (the dry run reads top to bottom).
TOP_ORDER = (
    "mode",
    "project",
    "group",
    "name",
    "checkpoint_root_dir",
    "model",
    "cluster",
    "algorithm",
    "buffer",
    "explorer",
    "trainer",
    "synchronizer",
    "monitor",
    "log",
)


def _same(value: Any, _cfg: AstunerConfig) -> Any:
    return value


def _algorithm_type(estimator: str, cfg: AstunerConfig) -> str:
    """Multi-timeline episodes (several samples per episode) need Trinity's step-wise GRPO, which
    gives every sample of a run the run's advantage; one sample per episode is plain GRPO."""
    if cfg.rollout.multi_turn.max_sample_per_task > 1:
        return "multi_step_grpo"
    return {"grpo": "grpo", "rloo": "rloo", "reinforce_plus_plus": "reinforceplusplus"}[estimator]


def _advantage_fn(norm_by_std: bool, cfg: AstunerConfig) -> str:
    """Trinity's advantage function for astuner's estimator (``astuner/algo/semantics.py``).

    GRPO without the std division (Dr. GRPO) is Trinity's OPMD group advantage with its default
    ``opmd_baseline: mean`` (``r - mean``; a lone episode keeps its reward, as verl's); the step-wise
    GRPO of multi-timeline episodes always divides (``algorithm_issues`` rejects the combination).
    """
    estimator = cfg.algorithm.adv_estimator
    if cfg.rollout.multi_turn.max_sample_per_task > 1:
        return "step_wise_grpo"
    if estimator == "grpo":
        return "grpo" if norm_by_std else "opmd"
    return {"rloo": "rloo", "reinforce_plus_plus": "reinforceplusplus"}[estimator]


def _runners_per_engine(max_env_worker: int, cfg: AstunerConfig) -> int:
    """Trinity runs ``runner_per_model`` workflow runners per engine, each running the ``repeat_times``
    episodes of one task at once (the adapter is a repeatable workflow): this many runners keep
    about ``rollout.max_env_worker`` episodes in flight."""
    engines, repeat = cfg.trainer_common.trinity_only__n_vllm_engine, cfg.rollout.num_repeat
    return max(1, math.ceil(max_env_worker / (engines * repeat)))


def _monitor_type(loggers: list[str], _cfg: AstunerConfig) -> str:
    """Trinity has one monitor; console output is always there, so the first other sink is it."""
    sinks = [x for x in loggers if x != "console"]
    return sinks[0] if sinks else "tensorboard"


# astuner key (below ``astuner.``) -> Trinity key(s), with a converter (value, whole config) -> value.
TO_TRINITY: dict[str, tuple[tuple[str, Callable[[Any, AstunerConfig], Any]], ...]] = {
    "project_name": (("project", _same),),
    # one optimizer step per batch_size x repeat_times experiences (Trinity's mini-batch is its training batch)
    "data.train_batch_size": (
        ("buffer.batch_size", _same),
        ("buffer.train_batch_size", lambda v, c: v * c.rollout.num_repeat),
    ),
    "data.max_prompt_length": (("model.max_prompt_tokens", _same),),
    "data.max_response_length": (("model.max_response_tokens", _same),),
    "rollout.num_repeat": (("algorithm.repeat_times", _same),),
    "rollout.temperature": (("model.temperature", _same),),
    "rollout.max_env_worker": (("explorer.runner_per_model", _runners_per_engine),),
    "rollout.tensor_model_parallel_size": (("explorer.rollout_model.tensor_parallel_size", _same),),
    "rollout.max_num_seqs": (("explorer.rollout_model.extra_engine_args.max_num_seqs", _same),),
    "rollout.max_model_len": (("model.max_model_len", _same),),
    "model.path": (("model.model_path", _same),),
    "trainer_common.save_freq": (("trainer.save_interval", _same),),
    "trainer_common.max_checkpoints_to_keep": (("trainer.max_checkpoints_to_keep", _same),),
    "trainer_common.test_freq": (("explorer.eval_interval", _same),),
    "trainer_common.total_epochs": (("buffer.total_epochs", _same),),
    "trainer_common.total_training_steps": (("buffer.total_steps", _same),),
    "trainer_common.val_before_train": (("explorer.eval_on_startup", _same),),
    "trainer_common.trinity_only__n_vllm_engine": (("explorer.rollout_model.engine_num", _same),),
    "trainer_common.logger": (("monitor.monitor_type", _monitor_type),),
    "trainer_common.seed": (("explorer.rollout_model.seed", _same),),
    "algorithm.adv_estimator": (("algorithm.algorithm_type", _algorithm_type),),
    "algorithm.norm_adv_by_std": (("algorithm.advantage_fn", _advantage_fn),),
    "algorithm.clip_ratio_low": (("algorithm.policy_loss_fn_args.clip_range_low", _same),),
    "algorithm.clip_ratio_high": (("algorithm.policy_loss_fn_args.clip_range_high", _same),),
    # the loss form: Trinity's PPO (dual-clip) loss, token-mean, no entropy term, the ratio taken
    # against the rollout engine's logprobs (no recomputed "old" policy), as on debug and verl
    "algorithm.clip_ratio_c": (
        ("algorithm.policy_loss_fn_args.clip_ratio_c", _same),
        ("algorithm.policy_loss_fn", lambda v, _c: "ppo"),
        ("algorithm.loss_agg_mode", lambda v, _c: "token-mean"),
        ("algorithm.entropy_loss_fn", lambda v, _c: "none"),
        ("algorithm.bypass_old_logprobs", lambda v, _c: True),
    ),
    # a k3 ("low_var_kl", clamped as verl's) term in the loss, never a penalty in the reward
    "algorithm.kl_coef": (
        ("algorithm.kl_loss_fn", lambda v, _c: "low_var_kl" if v > 0 else "none"),
        ("algorithm.kl_loss_fn_args.kl_coef", _same),
        ("algorithm.kl_penalty_fn", lambda v, _c: "none"),
    ),
    "optim.lr": (("algorithm.optimizer.lr", _same),),
    "optim.weight_decay": (("algorithm.optimizer.weight_decay", _same),),
    "optim.grad_clip": (("trainer.grad_clip", _same),),
}

# Keys with no Trinity equivalent: setting one warns, with what to do instead.
NO_EFFECT = {
    "rollout.hang_timeout": "Trinity's explorer drives the rollout; a stuck task is ended by "
    "trinity.explorer.max_timeout, a stuck episode by rollout.episode_timeout",
}


@dataclass
class TrinityTranslation:
    """The translated config and what the user should know about it.

    Attributes:
        config: the Trinity config as a plain nested dict (what ``trinity run --config`` loads).
        warnings: one line per astuner key that cannot take effect, or Trinity key overriding one.
        mapped: Trinity key -> the astuner key it came from (for tests and messages).
    """

    config: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True)


def translated_keys(loaded: LoadedConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """astuner's keys as flat Trinity keys, and which astuner key each came from."""
    values, origin = {}, {}
    for akey, targets in TO_TRINITY.items():
        value = get_key(loaded.astuner, akey)
        for tkey, convert in targets:
            values[tkey] = convert(value, loaded.astuner)
            origin[tkey] = f"astuner.{akey}"
    values["name"] = loaded.experiment_name
    origin["name"] = "astuner.experiment_name"
    return values, origin


def wiring(records_dir: Path, has_validation: bool, colocate: bool = False) -> dict[str, Any]:
    """Keys that connect Trinity to astuner's files: tasks, the workflow, checkpoints and logs (all in the records).

    Tasks are JSON lines that ``datasets.load_dataset(<folder>, split=...)`` reads (Trinity's file
    reader): ``train.jsonl`` is the ``train`` split, ``test.jsonl`` the ``test`` split.
    """
    trinity_dir = records_dir / "trinity"

    def taskset(name: str, split: str) -> dict[str, Any]:
        return {
            "name": name,
            "storage_type": "file",
            "path": str(trinity_dir / "tasks"),
            "split": split,
            "default_workflow_type": WORKFLOW_CLASS,
            "workflow_args": {SPEC_ARG: str(trinity_dir / "astuner_run.json")},
        }

    return {
        "mode": "colocate" if colocate else "both",
        "checkpoint_root_dir": str(records_dir / "checkpoints"),
        "buffer.explorer_input.default_workflow_type": WORKFLOW_CLASS,
        # ``tasksets`` (a list) is what Trinity's check turns a single ``taskset`` into.
        "buffer.explorer_input.taskset": None,
        "buffer.explorer_input.tasksets": [taskset("astuner_train", "train")],
        "buffer.explorer_input.eval_tasksets": [taskset("astuner_val", "test")] if has_validation else [],
        # The adapter talks to the engine through its OpenAI-compatible server (token ids in and out).
        "explorer.rollout_model.enable_openai_api": True,
        "log.save_dir": str(trinity_dir / "logs"),
    }


def to_trinity(
    loaded: LoadedConfig,
    records_dir: Path,
    model_path: str | None = None,
    has_validation: bool = True,
    cluster: TrinityCluster | None = None,
) -> TrinityTranslation:
    """Compose Trinity's config for ``loaded`` with records under ``records_dir`` (no Trinity import).

    ``model_path`` replaces ``astuner.model.path`` once it is resolved to a local folder (a
    ``builtin:`` model or a hub id); the dry run shows the path as written. ``cluster`` (the plan's,
    ``cluster.plan_cluster``) is written into the config when known, and one GPU in all makes it
    Trinity's colocate mode (``colocate_keys``); without it the config is for ``mode: both``.

    Raises:
        ConfigError: a wiring key set by the user, or an astuner setting Trinity cannot run.
    """
    passthrough = copy.deepcopy(loaded.tree.get("trinity") or {})
    values, origin = translated_keys(loaded)
    colocate = cluster is not None and cluster.colocate
    wired = wiring(records_dir, has_validation, colocate=colocate)
    values.update(wired)
    if model_path is not None:
        values["model.model_path"] = model_path
    cluster_notes: list[str] = []
    if cluster is not None and cluster.written:
        values.update({"cluster.node_num": cluster.node_num, "cluster.gpu_per_node": cluster.gpu_per_node})
    if colocate:
        cluster_notes = colocate_keys(loaded, passthrough, values, origin)
    user = {k.removeprefix("trinity."): v for k, v in user_keys_under(loaded, ("trinity",)).items()}
    clashes = wiring_clashes(loaded, user, wired, "trinity.", "Trinity to its tasks, workflow and records")
    issues = clashes + algorithm_issues(loaded) + (colocate_issues(loaded) if colocate else [])
    if issues:
        raise ConfigError(issues)
    notes = no_effect_warnings(loaded, NO_EFFECT, "trinity") + override_notes(loaded, user, values, origin, "trinity.")
    notes += cluster_notes
    merged = _merge(_merge(passthrough, nest(values)), nest(user))
    config = {k: merged[k] for k in sorted(merged, key=lambda k: (TOP_ORDER.index(k) if k in TOP_ORDER else 99, k))}
    return TrinityTranslation(config=config, warnings=notes, mapped=origin)


def colocate_keys(
    loaded: LoadedConfig, passthrough: dict[str, Any], values: dict[str, Any], origin: dict[str, str]
) -> list[str]:
    """What one GPU changes, written into ``values`` as the keys Trinity's colocate mode runs with.

    Trinity sets these itself in colocate mode (one engine, weights synced in memory, the engine
    capped at a quarter of the GPU); writing them makes the dry run show them. Returns the notes
    for what differs from what the user configured.
    """
    cfg, notes = loaded.astuner, []
    engines = cfg.trainer_common.trinity_only__n_vllm_engine
    values["explorer.rollout_model.engine_num"] = 1
    values["explorer.runner_per_model"] = max(1, math.ceil(cfg.rollout.max_env_worker / cfg.rollout.num_repeat))
    if engines != 1:
        notes.append(
            f"astuner.trainer_common.trinity_only__n_vllm_engine = {engines} does not fit one GPU: Trinity's "
            "colocate mode runs 1 engine beside the trainer on it (set it to 1 to silence this)"
        )
    values["synchronizer.sync_method"] = "memory"
    origin["synchronizer.sync_method"] = "one GPU (Trinity's colocate mode)"
    rollout = passthrough.get("explorer", {}).get("rollout_model", {})
    memory = float(rollout.get("gpu_memory_utilization") or COLOCATE_ENGINE_MEMORY)
    values["explorer.rollout_model.gpu_memory_utilization"] = min(memory, COLOCATE_ENGINE_MEMORY)
    origin["explorer.rollout_model.gpu_memory_utilization"] = "one GPU (Trinity's colocate mode)"
    return notes


def colocate_issues(loaded: LoadedConfig) -> list[ConfigIssue]:
    """Settings one GPU cannot run: an engine split over several GPUs."""
    tp = loaded.astuner.rollout.tensor_model_parallel_size
    if tp == 1:
        return []
    return [
        ConfigIssue(
            "astuner.rollout.tensor_model_parallel_size",
            f"= {tp} splits the engine over {tp} GPUs, but this run has 1 GPU (Trinity's colocate mode): set it to 1",
            str(loaded.yaml_path),
        )
    ]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def algorithm_issues(loaded: LoadedConfig) -> list[ConfigIssue]:
    """Combinations Trinity cannot compute as astuner does: its step-wise algorithm (several samples
    per episode) exists for GRPO only, and always divides by the group's reward std."""
    cfg = loaded.astuner
    keep, estimator = cfg.rollout.multi_turn.max_sample_per_task, cfg.algorithm.adv_estimator
    if cfg.algorithm.dynamic_sampling.enable:
        return [
            ConfigIssue(
                "astuner.algorithm.dynamic_sampling.enable",
                "= true has no Trinity-RFT 0.6.0 equivalent: Trinity can drop groups without signal "
                "(trinity.algorithm.advantage_fn_args.std_threshold) but never rolls out fresh tasks to "
                "refill the step; use --backbone=debug",
                str(loaded.yaml_path),
            )
        ]
    if keep > 1 and estimator != "grpo":
        return [
            ConfigIssue(
                "astuner.algorithm.adv_estimator",
                f"= {estimator!r} has no step-wise variant in Trinity, which multi-timeline episodes need "
                f"(rollout.multi_turn.max_sample_per_task = {keep}); use 'grpo' or set max_sample_per_task to 1",
                str(loaded.yaml_path),
            )
        ]
    if keep > 1 and not cfg.algorithm.norm_adv_by_std:
        return [
            ConfigIssue(
                "astuner.algorithm.norm_adv_by_std",
                f"= false: Trinity's step-wise GRPO, which multi-timeline episodes need (rollout.multi_turn."
                f"max_sample_per_task = {keep}), always divides by the group's reward std; set it to true or "
                "max_sample_per_task to 1 (then Trinity's OPMD advantage subtracts only the mean)",
                str(loaded.yaml_path),
            )
        ]
    return []


def assumed_cluster(config: dict[str, Any]) -> dict[str, int]:
    """The smallest cluster the config fits (one node: the engines' GPUs plus one trainer GPU).

    Why: Trinity's cluster check otherwise starts Ray to count GPUs; the dry run checks against
    this assumption instead (``trinity.cluster.node_num`` / ``gpu_per_node`` set it explicitly).
    """
    rollout = config.get("explorer", {}).get("rollout_model", {})
    engines, tp = int(rollout.get("engine_num", 1)), int(rollout.get("tensor_parallel_size", 1))
    return {"node_num": 1, "gpu_per_node": engines * tp + 1}


def trinity_issues(config: dict[str, Any], display: str) -> list[ConfigIssue]:
    """Trinity's own config check (``load_config`` + ``Config.check_and_update``, what ``trinity run`` runs).

    Why here: Trinity raises these only after Ray starts; running the same check before anything
    starts turns a late traceback into one line (exit 2), in the dry run too. Without
    ``trinity.cluster.node_num``/``gpu_per_node`` the check assumes ``assumed_cluster`` (no Ray).
    The check creates folders below ``checkpoint_root_dir``; it runs on a copy pointed at a
    temporary folder, so planning writes nothing into the records.
    """
    from omegaconf import OmegaConf
    from trinity.common.config import Config

    checked = copy.deepcopy(config)
    cluster = checked.setdefault("cluster", {})
    if not cluster.get("node_num") or not cluster.get("gpu_per_node"):
        cluster.update(assumed_cluster(checked))
    try:
        # Trinity logs its suggestions on stdout: keep stdout for the config (--dry-run | ...).
        with (
            tempfile.TemporaryDirectory(prefix="astuner-trinity-check-") as scratch,
            contextlib.redirect_stdout(io.StringIO()),
            _quiet_trinity_logs(),
        ):
            checked["checkpoint_root_dir"] = scratch
            trinity = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), checked))
            trinity.check_and_update()
    except Exception as exc:  # Trinity raises ValueError, AssertionError, OmegaConf errors, ...
        text = " ".join(str(exc).split()) or type(exc).__name__
        return [ConfigIssue("(trinity)", f"Trinity-RFT 0.6.0 rejects the translated config: {text}", display)]
    return []


@contextlib.contextmanager
def _quiet_trinity_logs():
    """Trinity's validators log every default they fill in at WARNING; the dry run shows only the verdict."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(before)
