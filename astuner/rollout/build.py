"""Builders that turn the validated config into rollout objects (small and explicit, torchtune-style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astuner.config.class_ref import resolve_class
from astuner.config.schema import AstunerConfig, EngineConfig
from astuner.config.view import ComposedConfig
from astuner.engine.vllm_server import VllmServer, VllmServerSpec, find_engine_python
from astuner.env_service import EnvSessions, client_from_config
from astuner.gpus import visible_gpus
from astuner.rollout.runner import RolloutRunner, RolloutSettings
from astuner.task_judge.base_judge import BaseJudge
from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.model_tuner import TunerSettings


def tuner_settings(cfg: AstunerConfig, temperature: float | None = None) -> TunerSettings:
    r = cfg.rollout
    return TunerSettings(
        temperature=r.temperature if temperature is None else temperature,
        max_model_len=r.max_model_len,
        max_tokens_per_turn=r.max_response_length_in_one_turn,
        max_calls=r.multi_turn.max_steps,
        gateway_ignore=tuple(r.gateway.ignore_unsupported),
    )


def rollout_settings(cfg: AstunerConfig) -> RolloutSettings:
    r, d = cfg.rollout, cfg.data
    return RolloutSettings(
        num_repeat=r.num_repeat,
        max_env_worker=r.max_env_worker,
        episode_timeout=r.episode_timeout,
        hang_timeout=r.hang_timeout,
        madness_checklist=tuple(r.compute_madness_checklist),
        madness_reward=r.agent_madness_reward,
        max_prompt_length=d.max_prompt_length,
        max_response_length=d.max_response_length,
        max_samples_per_task=r.multi_turn.max_sample_per_task,
        tuner=tuner_settings(cfg),
    )


# The engine's share of a GPU it shares with the debug trainer (the policy, its optimizer state and
# activations live on the same GPU): measured on the H200 with the embedded model at 0.3 and 32 x 8.
SHARED_GPU_MEMORY = 0.4


def engine_device_flags(e: EngineConfig, gpus: int) -> tuple[bool, float | None]:
    """``(enforce_eager, gpu_memory_utilization)`` for the engine, the nulls filled in for the machine.

    On CPU: eager (CUDA-graph capture has nothing to speed up and adds ~2 min), no memory share. On a
    GPU: CUDA graphs, and ``SHARED_GPU_MEMORY`` unless the user gave one (the key, or the flag in
    ``extra_args``, which the config check keeps from clashing with the key).
    """
    eager = e.enforce_eager if e.enforce_eager is not None else gpus == 0
    share = e.gpu_memory_utilization
    given = any(a.startswith("--gpu-memory-utilization") for a in e.extra_args)
    if share is None and gpus > 0 and not given:
        share = SHARED_GPU_MEMORY
    return eager, share if gpus > 0 else None


def vllm_server(cfg: AstunerConfig, model_dir: Path, log_path: Path) -> VllmServer:
    """The (not yet started) vLLM server for ``cfg``; ``with`` it to start and stop it."""
    r, e = cfg.rollout, cfg.rollout.engine
    gpus = visible_gpus()
    eager, share = engine_device_flags(e, gpus)
    spec = VllmServerSpec(
        model_path=str(model_dir),
        python=find_engine_python(e.python),
        max_model_len=r.max_model_len,
        max_num_seqs=r.max_num_seqs,
        tensor_parallel_size=r.tensor_model_parallel_size,
        seed=e.seed,
        dtype=e.dtype,
        enforce_eager=eager,
        gpu_memory_utilization=share,
        cpu_kv_cache_gib=e.cpu_kv_cache_gib if gpus == 0 else None,
        extra_args=tuple(e.extra_args),
    )
    return VllmServer(spec, log_path, keep_alive=e.keep_alive, startup_timeout=e.startup_timeout)


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def build_judge(
    cfg: AstunerConfig, yaml_dir: Path, cwd: Path, composed: ComposedConfig | None = None
) -> BaseJudge | None:
    ref = cfg.task_judge.judge_protocol
    return resolve_class(ref, yaml_dir, cwd)(config=cfg, composed_config=composed) if ref else None


def env_sessions(cfg: AstunerConfig) -> EnvSessions | None:
    """A new client of the env service (``task_reader.type: env_service``), else None; the caller closes it."""
    tr = cfg.task_reader
    return EnvSessions(client_from_config(tr.env_service)) if tr.type == "env_service" else None


def build_runner(
    cfg: AstunerConfig,
    engine: Any,
    tokenizer: Any,
    yaml_dir: Path,
    cwd: Path,
    composed: ComposedConfig | None = None,
    with_env: bool = True,
) -> RolloutRunner:
    """The rollout runner of a run: workflow class, judge, chat renderer, settings and (``with_env``) an
    env-service client. ``engine`` may be None when each episode binds its own (``RolloutRunner.bind``)."""
    assert cfg.rollout.agentscope_workflow is not None, "validated by astuner.config"
    workflow_cls = resolve_class(cfg.rollout.agentscope_workflow, yaml_dir, cwd)
    composed = composed if composed is not None else ComposedConfig(cfg, {})
    return RolloutRunner(
        engine,
        ChatRenderer(tokenizer),
        workflow_cls,
        build_judge(cfg, yaml_dir, cwd, composed),
        rollout_settings(cfg),
        env_sessions(cfg) if with_env else None,
        config=composed,
    )
