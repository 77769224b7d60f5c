"""Translate an astuner experiment into verl 0.9.1's Hydra config (``verl/trainer/config/ppo_trainer``).

Why a table: every astuner key is accounted for in exactly one place (``TO_VERL``, ``ADAPTER_KEYS``,
``NO_EFFECT``, or a schema ``backbones`` mark), and a test fails when a new schema key is in none of
them, so no key is ever dropped silently. Keys in ``NO_EFFECT`` that the user sets produce a warning
naming the key and what to set instead.

Layering (later wins), so that astuner's own keys take effect and the user still has the last word:
    1. verl's ``ppo_trainer`` composed by Hydra from verl's installed config folder;
    2. the verl sections of the composed YAML (``verl_default.yaml`` and any top-level verl keys);
    3. astuner's translated keys (``TO_VERL``) and the wiring (data files, agent loop, checkpoints);
    4. verl keys the user set explicitly (YAML or command line); each one that overrides a translated
       key is reported, naming both keys.
Interpolations of verl's config (``${oc.select:...}``) are kept, so derived keys follow the values.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
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
from astuner.config.errors import ConfigError, ConfigIssue
from astuner.config.load import VERL_SECTIONS, LoadedConfig

AGENT_LOOP_NAME = "astuner"


# astuner key (below ``astuner.``) -> verl key(s), with a value converter where the meaning differs.
# Some entries also pin verl keys to the constant that makes verl compute astuner's algorithm
# (``astuner/algo/semantics.py``); a user who sets one of those in a verl section is told it overrides.
TO_VERL: dict[str, tuple[tuple[str, Callable[[Any], Any]], ...]] = {
    "project_name": (("trainer.project_name", lambda v: v),),
    # one optimizer step per train_batch_size x rollout.n samples (verl's v1 trainer multiplies by n), each once
    "data.train_batch_size": (
        ("data.train_batch_size", lambda v: v),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", lambda v: v),
        ("actor_rollout_ref.actor.ppo_epochs", lambda v: 1),
    ),
    "data.max_prompt_length": (("data.max_prompt_length", lambda v: v),),
    "data.max_response_length": (("data.max_response_length", lambda v: v),),
    "rollout.num_repeat": (("actor_rollout_ref.rollout.n", lambda v: v),),
    "rollout.temperature": (("actor_rollout_ref.rollout.temperature", lambda v: v),),
    "rollout.tensor_model_parallel_size": (("actor_rollout_ref.rollout.tensor_model_parallel_size", lambda v: v),),
    "rollout.max_num_seqs": (("actor_rollout_ref.rollout.max_num_seqs", lambda v: v),),
    "rollout.max_model_len": (("actor_rollout_ref.rollout.max_model_len", lambda v: v),),
    "model.path": (("actor_rollout_ref.model.path", lambda v: v),),
    "trainer_common.save_freq": (("trainer.save_freq", lambda v: v),),
    # verl keeps actor and critic checkpoints apart; null keeps all, where astuner says 0
    "trainer_common.max_checkpoints_to_keep": (
        ("trainer.max_actor_ckpt_to_keep", lambda v: v or None),
        ("trainer.max_critic_ckpt_to_keep", lambda v: v or None),
    ),
    "trainer_common.test_freq": (("trainer.test_freq", lambda v: v),),
    "trainer_common.total_epochs": (("trainer.total_epochs", lambda v: v),),
    "trainer_common.total_training_steps": (("trainer.total_training_steps", lambda v: v),),
    "trainer_common.val_before_train": (("trainer.val_before_train", lambda v: v),),
    # verl's "file" logger is always added: it writes every step's metrics into the records.
    "trainer_common.logger": (("trainer.logger", lambda v: [*v, "file"] if "file" not in v else list(v)),),
    "trainer_common.seed": (("data.seed", lambda v: v), ("actor_rollout_ref.rollout.seed", lambda v: v)),
    "algorithm.adv_estimator": (("algorithm.adv_estimator", lambda v: v),),
    "algorithm.norm_adv_by_std": (("algorithm.norm_adv_by_std_in_grpo", lambda v: v),),
    "algorithm.clip_ratio_low": (("actor_rollout_ref.actor.clip_ratio_low", lambda v: v),),
    "algorithm.clip_ratio_high": (("actor_rollout_ref.actor.clip_ratio_high", lambda v: v),),
    # the loss form: verl's vanilla (dual-clip) PPO, token-mean, no entropy bonus, the ratio taken
    # against the rollout engine's logprobs (bypass mode: no recomputed "old" policy), as on debug/Trinity
    "algorithm.clip_ratio_c": (
        ("actor_rollout_ref.actor.clip_ratio_c", lambda v: v),
        ("actor_rollout_ref.actor.policy_loss.loss_mode", lambda v: "vanilla"),
        ("actor_rollout_ref.actor.loss_agg_mode", lambda v: "token-mean"),
        ("actor_rollout_ref.actor.entropy_coeff", lambda v: 0.0),
        ("algorithm.rollout_correction.bypass_mode", lambda v: True),
    ),
    # a k3 ("low_var_kl") term in the loss, never a penalty in the reward
    "algorithm.kl_coef": (
        ("actor_rollout_ref.actor.use_kl_loss", lambda v: v > 0),
        ("actor_rollout_ref.actor.kl_loss_coef", lambda v: v),
        ("actor_rollout_ref.actor.kl_loss_type", lambda v: "low_var_kl"),
        ("algorithm.use_kl_in_reward", lambda v: False),
    ),
    "optim.lr": (("actor_rollout_ref.actor.optim.lr", lambda v: v),),
    "optim.weight_decay": (("actor_rollout_ref.actor.optim.weight_decay", lambda v: v),),
    "optim.grad_clip": (("actor_rollout_ref.actor.grad_clip", lambda v: v),),
}

# Keys with no verl equivalent: setting one warns, with what to do instead.
NO_EFFECT = {
    "rollout.max_env_worker": "verl runs every sample of a worker's share at once; "
    "set actor_rollout_ref.rollout.agent.num_workers to change the number of agent-loop workers",
    "rollout.hang_timeout": "verl drives the rollout, one episode per agent-loop call; a stuck episode is "
    "ended by rollout.episode_timeout",
}


@dataclass
class VerlTranslation:
    """The translated config and what the user should know about it.

    Attributes:
        config: verl's whole config (an OmegaConf DictConfig, interpolations kept).
        warnings: one line per astuner key that cannot take effect, or verl key overriding one.
        mapped: verl key -> the astuner key it came from (for tests and messages).
    """

    config: Any
    warnings: list[str] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)

    def to_yaml(self) -> str:
        from omegaconf import OmegaConf

        return OmegaConf.to_yaml(self.config)


def verl_config_dir() -> Path:
    """verl's installed Hydra config folder, found without importing verl (which imports torch and Ray)."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            ConfigIssue(
                "--backbone",
                "= 'verl' needs verl 0.9.1 in this Python; run scripts/setup_env.sh (it creates .venv-verl) "
                "and use .venv-verl/bin/astuner, or set ASTUNER_VERL_PYTHON",
                "command line",
            )
        )
    return Path(list(spec.submodule_search_locations)[0]) / "trainer" / "config"


def compose_ppo_trainer() -> Any:
    """verl's own ``ppo_trainer`` config, composed by Hydra exactly as ``verl.trainer.main_ppo`` does."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
        return compose(config_name="ppo_trainer")


def translated_keys(loaded: LoadedConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """astuner's keys as flat verl keys, and which astuner key each came from."""
    values, origin = {}, {}
    for akey, targets in TO_VERL.items():
        value = get_key(loaded.astuner, akey)
        for vkey, convert in targets:
            values[vkey] = convert(value)
            origin[vkey] = f"astuner.{akey}"
    values["trainer.experiment_name"] = loaded.experiment_name
    origin["trainer.experiment_name"] = "astuner.experiment_name"
    return values, origin


def wiring(records_dir: Path, has_validation: bool = True) -> dict[str, Any]:
    """Keys that connect verl to astuner's files: tasks, the agent loop, checkpoints (all in the records).

    Without validation tasks verl still builds a validation loader: it gets the training file and
    never runs (``test_freq = -1``, no validation before training).
    """
    verl_dir = records_dir / "verl"
    no_val = {} if has_validation else {"trainer.test_freq": -1, "trainer.val_before_train": False}
    return {
        **no_val,
        "data.train_files": str(verl_dir / "train.parquet"),
        "data.val_files": str(verl_dir / ("val.parquet" if has_validation else "train.parquet")),
        "data.return_raw_chat": True,
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": str(verl_dir / "agent_loops.yaml"),
        "actor_rollout_ref.rollout.agent.default_agent_loop": AGENT_LOOP_NAME,
        "actor_rollout_ref.rollout.calculate_log_probs": True,
        "trainer.default_local_dir": str(records_dir / "checkpoints"),
        # verl's tensorboard logger writes to $TENSORBOARD_DIR, else a folder relative to the working
        # directory; the job's runtime env reaches every verl actor, also on a cluster astuner did not start.
        "ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR": str(records_dir / "tensorboard"),
        "ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH": str(records_dir / "verl" / "metrics.jsonl"),
        # verl's @hydra.main would write outputs/<date>/<time>/ into the working directory.
        "hydra.run.dir": str(verl_dir / "hydra"),
    }


def algorithm_issues(loaded: LoadedConfig, config: Any) -> list[ConfigIssue]:
    """Combinations with which verl would compute something other than astuner's algorithm.

    - verl's legacy trainer (``trainer.use_v1=false``) needs exactly one output per episode: it can
      neither drop a failed episode from its group nor take one sample per timeline.
    - With several samples per episode, verl's v1 trainer makes each timeline one group member for
      every estimator but GRPO (it keeps only a session's last output for GRPO); RLOO's
      leave-one-out baseline would then count an episode several times. REINFORCE++ has no groups.
    """
    display = str(loaded.yaml_path)
    keep = loaded.astuner.rollout.multi_turn.max_sample_per_task
    estimator = loaded.astuner.algorithm.adv_estimator
    if loaded.astuner.algorithm.dynamic_sampling.enable:
        return [
            ConfigIssue(
                "astuner.algorithm.dynamic_sampling.enable",
                "= true is not mapped to verl yet: verl 0.9.1's v1 trainer refills filtered groups "
                "(algorithm.filter_groups) with no cap on extra rollouts (its replay buffer ignores "
                "max_num_gen_batches), unlike astuner's max_extra_batches; use --backbone=debug, or set "
                "verl's own algorithm.filter_groups (enable: true, metric: reward) and leave this off",
                display,
            )
        ]
    if not bool(config.trainer.use_v1):
        return [
            ConfigIssue(
                "trainer.use_v1",
                "= false: verl's legacy trainer cannot leave a failed episode out of its group"
                + (
                    f" nor take one sample per timeline (rollout.multi_turn.max_sample_per_task = {keep})"
                    if keep > 1
                    else ""
                )
                + "; remove the key (verl's default, the v1 trainer, does both)",
                display,
            )
        ]
    if keep > 1 and estimator == "rloo":
        return [
            ConfigIssue(
                "astuner.algorithm.adv_estimator",
                f"= 'rloo' with rollout.multi_turn.max_sample_per_task = {keep}: verl's v1 trainer counts every "
                "timeline of an episode as a member of its RLOO group; use 'grpo' or set max_sample_per_task to 1",
                display,
            )
        ]
    return []


def verl_issues(config: Any, display: str) -> list[ConfigIssue]:
    """verl's own config check (``verl.utils.config.validate_config``, what ``main_ppo.main`` runs first).

    Why here: verl raises these only after Ray and its workers start; running the same check before
    anything starts turns a late traceback into one line (exit 2), in the dry run too.
    """
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    resolved = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    try:
        # verl prints its verdict and warns about the critic: keep stdout for the config (--dry-run | ...).
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            validate_config(resolved, need_reference_policy(resolved), need_critic(resolved))
    except (ValueError, AssertionError, TypeError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return [ConfigIssue("(verl)", f"verl 0.9.1 rejects the translated config: {text}", display)]
    return []


def to_verl(
    loaded: LoadedConfig,
    records_dir: Path,
    model_path: str | None = None,
    check: bool = True,
    has_validation: bool = True,
) -> VerlTranslation:
    """Compose verl's config for ``loaded`` with records under ``records_dir``.

    ``model_path`` replaces ``astuner.model.path`` (the plan gives the folder a ``builtin:`` model
    is converted into). ``check`` runs verl's own config validation (it imports verl and torch).
    ``has_validation`` False turns verl's validation off (no validation tasks).

    Raises:
        ConfigError: verl is not installed here, or the combination cannot work on verl.
    """
    from omegaconf import OmegaConf

    base = compose_ppo_trainer()
    passthrough = {k: v for k, v in loaded.tree.items() if k in VERL_SECTIONS}
    values, origin = translated_keys(loaded)
    wired = wiring(records_dir, has_validation)
    values.update(wired)
    if model_path is not None:
        values["actor_rollout_ref.model.path"] = model_path
    user = user_keys_under(loaded, VERL_SECTIONS)
    clashes = wiring_clashes(loaded, user, wired, "", "verl to its tasks, agent loop and records")
    if clashes:
        raise ConfigError(clashes)
    notes = no_effect_warnings(loaded, NO_EFFECT, "verl") + override_notes(loaded, user, values, origin, "")
    if not has_validation:
        notes.append("no validation tasks: verl's validation is off (trainer.test_freq = -1)")
    OmegaConf.set_struct(base, False)
    config = OmegaConf.merge(base, passthrough, nest(values), nest(user))
    issues = algorithm_issues(loaded, config)
    if check and not issues:
        issues = verl_issues(config, str(loaded.yaml_path))
    if issues:
        raise ConfigError(issues)
    return VerlTranslation(config=config, warnings=notes, mapped=origin)
