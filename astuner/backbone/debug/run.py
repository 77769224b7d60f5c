"""``--backbone=debug``: one process, one vLLM child, the user's workflow in this event loop.

Current scope: one rollout step over the first ``data.train_batch_size`` training tasks, recorded
token-exactly into ``trajectories/`` with step metrics in ``metrics.jsonl``. The policy update
(GRPO in-process) is not part of this version yet.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from loguru import logger

from astuner.config.load import LoadedConfig
from astuner.engine.vllm_client import VllmEngine
from astuner.model import resolve_model_path
from astuner.records import Experiment
from astuner.records.trajectories import write_step
from astuner.rollout.build import build_runner, load_tokenizer, vllm_server
from astuner.rollout.metrics import rollout_metrics
from astuner.task_reader.task import Task


def run_debug(loaded: LoadedConfig, experiment: Experiment, tasks: list[Task]) -> int:
    cfg = loaded.astuner
    batch = tasks[: cfg.data.train_batch_size]
    model_dir = resolve_model_path(cfg.model.path or "")
    tokenizer = load_tokenizer(model_dir)
    with vllm_server(cfg, model_dir, experiment.root / "vllm.log") as server:
        engine = VllmEngine(server.base_url, server.spec.served_model_name)
        runner = build_runner(cfg, engine, tokenizer, loaded.yaml_path.parent, Path.cwd())

        async def rollout():
            try:
                return await runner.run(batch, step=0)
            finally:
                await engine.aclose()

        start = time.monotonic()
        episodes = asyncio.run(rollout())
        seconds = time.monotonic() - start
    metrics = rollout_metrics(episodes, seconds)
    path = write_step(experiment.trajectories_dir, 0, episodes)
    experiment.log_metrics(0, metrics)
    logger.info(
        f"step 0: {metrics['episodes']} episodes ({metrics['episodes_failed']} failed, "
        f"{metrics['episodes_timeout']} timed out), reward {metrics['reward_mean']:.3f}, "
        f"success {metrics['success_rate']:.2%}, {metrics['generated_tokens_per_s']:.0f} tok/s; trajectories: {path}"
    )
    logger.info("this version of the debug backbone rolls out and records one batch; it does not update the policy")
    return 0
