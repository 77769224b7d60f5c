"""``--backbone=debug``: the whole RL loop in this process, no Ray, breakpoint friendly.

Per step: read ``data.train_batch_size`` tasks -> roll out ``rollout.num_repeat`` episodes of each
(vLLM child process, the user's workflow in this event loop) -> judge -> advantages per task group ->
PPO-clip update of the HF model with torch -> push the new weights into vLLM (in place) -> record.
Validation (greedy) every ``trainer_common.test_freq`` steps, checkpoints every ``save_freq`` steps
and at the end (the newest ``max_checkpoints_to_keep`` kept); ``--resume`` continues from the latest checkpoint exactly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import statistics
import sys
import time
from typing import Any

from loguru import logger
from tqdm import tqdm

from astuner.algo.advantages import compute_advantages, zero_signal_groups
from astuner.algo.dynamic_sampling import GroupFilter
from astuner.algo.semantics import enters_group
from astuner.backbone.debug.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from astuner.config.load import LoadedConfig
from astuner.engine.vllm_client import VllmEngine
from astuner.engine.vllm_server import VllmServer
from astuner.engine.weight_sync import VllmWeightSync
from astuner.model import resolve_model_path
from astuner.records import Experiment
from astuner.records.metric_sinks import MetricSinks, plot_reward_curve
from astuner.records.trajectories import write_step
from astuner.rollout.build import build_runner, load_tokenizer, tuner_settings, vllm_server
from astuner.rollout.metrics import rollout_metrics, tool_use_text
from astuner.rollout.runner import Episode, RolloutFailingError, RolloutRunner
from astuner.task_reader.task import Task

PROBE_TEXT = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: \\boxed{7}"


def plan_steps(n_tasks: int, batch: int, epochs: int, total_steps: int | None) -> int:
    """Steps to run: ``total_training_steps`` if set, else full batches over ``total_epochs``."""
    per_epoch = max(1, n_tasks // batch)
    return total_steps if total_steps is not None else per_epoch * epochs


def batch_for(tasks: list[Task], state: TrainState, batch: int, seed: int) -> tuple[list[Task], TrainState]:
    """The next batch from a per-epoch shuffled order, and the position after it."""
    per_epoch = max(1, len(tasks) // batch)
    epoch, index = state.epoch, state.batch_index
    if index >= per_epoch:
        epoch, index = epoch + 1, 0
    order = list(range(len(tasks)))
    random.Random(f"{seed}-{epoch}").shuffle(order)
    chosen = [tasks[i] for i in order[index * batch : (index + 1) * batch]]
    return chosen, TrainState(step=state.step + 1, epoch=epoch, batch_index=index + 1)


class FailedStepGuard:
    """Stops the run when ``limit`` training steps in a row ended with no ok episode.

    Why: a dead engine or env server, a broken judge or workflow turns every episode into a failure;
    each such step trains on nothing, so going on would only burn hours. ``limit`` 0 never stops.
    """

    def __init__(self, limit: int):
        self.limit, self.streak = limit, []

    def observe(self, step: int, episodes: list[Episode]) -> None:
        if any(e.status == "ok" for e in episodes):
            self.streak = []
            return
        self.streak.append(step)
        if self.limit and len(self.streak) >= self.limit:
            failed = [e for e in episodes if e.status != "ok"]
            last = (failed[0].error or failed[0].status).strip().splitlines()[-1] if failed else "no episodes"
            counts = ", ".join(f"{sum(e.status == s for e in episodes)} {s}" for s in ("failed", "timeout"))
            raise RolloutFailingError(
                f"{len(self.streak)} training steps in a row (steps {self.streak[0]}-{self.streak[-1]}) had no "
                f"episode that ended ok (last step: {counts}; first error: {last}); "
                "trainer_common.max_failed_steps stops the run here"
            )


class DebugRun:
    """Owns the pieces of one debug run; ``run()`` is the loop."""

    def __init__(self, loaded: LoadedConfig, experiment: Experiment, train: list[Task], val: list[Task]):
        self.loaded, self.experiment, self.cfg = loaded, experiment, loaded.astuner
        n = self.cfg.debug.first_n_tasks
        self.train_tasks = train[:n] if n else train
        self.val_tasks = val[:n] if n else val
        self.sinks: MetricSinks | None = None
        self.runner: RolloutRunner | None = None
        self.server: VllmServer | None = None
        # debug.optimizer_offload: the optimizer's state between updates (deleted at the end of the run)
        self.optimizer_file = experiment.root / "optimizer_offload.pt"

    def run(self) -> int:
        cfg = self.cfg
        model_dir = resolve_model_path(cfg.model.path or "")
        tokenizer = load_tokenizer(model_dir)
        self.experiment.save_tokenizer(tokenizer)
        trainer = None
        if not cfg.debug.rollout_only:
            from astuner.backbone.debug.trainer import PolicyTrainer

            trainer = PolicyTrainer(model_dir, cfg)
        state = TrainState()
        if self.experiment.resumed and trainer is not None:
            ckpt = latest_checkpoint(self.experiment.checkpoints_dir)
            if ckpt is not None:
                state = load_checkpoint(ckpt, trainer)
                logger.info(f"resumed from {ckpt} (step {state.step}, epoch {state.epoch})")
                self._supersede_metrics_after(state.step)
        total = plan_steps(
            len(self.train_tasks),
            cfg.data.train_batch_size,
            cfg.trainer_common.total_epochs,
            cfg.trainer_common.total_training_steps,
        )
        self.sinks = MetricSinks(
            self.experiment, cfg.trainer_common.logger, cfg.project_name, self.loaded.experiment_name, self.loaded.tree
        )
        try:
            with vllm_server(cfg, model_dir, self.experiment.root / "vllm.log") as server:
                self.server = server
                sync = VllmWeightSync(server.base_url, self.experiment.root / "engine_weights")
                try:
                    if trainer is not None and (state.step > 0 or not server.owned):
                        sync.push(trainer.engine_weights())  # resumed weights, or a reused engine's
                    asyncio.run(self._loop(server.base_url, tokenizer, trainer, sync, state, total))
                finally:
                    sync.close()
        finally:
            self.optimizer_file.unlink(missing_ok=True)
            if self.runner is not None and self.runner.env is not None:
                self.runner.env.close()  # instances the interrupted loop could not release
            self.sinks.close()
            try:
                curve = plot_reward_curve(self.experiment.metrics_path, self.experiment.root / "reward_curve.png")
            except Exception as exc:  # a plot must not hide why the run ended
                logger.warning(f"reward curve not drawn: {type(exc).__name__}: {exc}")
                curve = None
            if curve:
                logger.info(f"reward curve: {curve}")
        return 0

    def _supersede_metrics_after(self, step: int) -> None:
        """Steps after the checkpoint will run again: move their lines to metrics.superseded.jsonl."""
        path = self.experiment.metrics_path
        if not path.is_file():
            return
        keep, moved = [], []
        for line in path.read_text().splitlines():
            (moved if json.loads(line).get("step", 0) > step else keep).append(line)
        if moved:
            with (path.parent / "metrics.superseded.jsonl").open("a") as f:
                f.write("\n".join(moved) + "\n")
            path.write_text("".join(line + "\n" for line in keep))

    def _runner(self, base_url: str, tokenizer: Any) -> tuple[RolloutRunner, VllmEngine]:
        engine = VllmEngine(base_url, "policy")
        runner = build_runner(
            self.cfg, engine, tokenizer, self.loaded.yaml_path.parent, self.loaded.cwd, self.loaded.composed()
        )
        d = self.cfg.debug
        workers = 1 if d.deterministic else (d.max_parallel or self.cfg.rollout.max_env_worker)
        seed = self.cfg.trainer_common.seed if d.deterministic else None
        runner.settings = dataclasses.replace(
            runner.settings, max_env_worker=workers, tuner=dataclasses.replace(runner.settings.tuner, seed=seed)
        )
        return runner, engine

    async def _loop(self, base_url, tokenizer, trainer, sync, state: TrainState, total: int) -> None:
        cfg = self.cfg
        runner, engine = self._runner(base_url, tokenizer)
        self.runner = runner
        probe = tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]
        try:
            if cfg.trainer_common.val_before_train and state.step == 0:
                await self._validate(runner, 0)
            logger.info(
                f"training {total} steps of {cfg.data.train_batch_size} tasks x {cfg.rollout.num_repeat} "
                f"episodes ({len(self.train_tasks)} training tasks)"
            )
            guard = FailedStepGuard(cfg.trainer_common.max_failed_steps)
            while state.step < total:
                batch, state = batch_for(self.train_tasks, state, cfg.data.train_batch_size, cfg.trainer_common.seed)
                episodes, state = await self._step(runner, trainer, sync, batch, state, probe, total)
                guard.observe(state.step, episodes)
                if state.step % cfg.trainer_common.test_freq == 0 or state.step == total:
                    await self._validate(runner, state.step)
                if trainer is not None and (state.step % cfg.trainer_common.save_freq == 0 or state.step == total):
                    logger.debug(f"phase checkpoint step {state.step}")
                    folder = self.experiment.checkpoints_dir
                    logger.info(f"checkpoint: {save_checkpoint(folder, trainer, state)}")
                    for old in prune_checkpoints(folder, cfg.trainer_common.max_checkpoints_to_keep):
                        logger.info(f"checkpoint deleted (max_checkpoints_to_keep): {old}")
                    trainer.release_memory()  # before the next rollout
        finally:
            if runner.env is not None:
                await runner.env.aclose()
            await engine.aclose()

    async def _rollout(self, runner, batch, state, total) -> tuple[list[Episode], list[Episode], TrainState, dict]:
        """The step's episodes, the ones it trains on, the position in the task order after them, and metrics.

        With ``algorithm.dynamic_sampling`` groups without signal are dropped and further batches of the
        task order are rolled out (tasks already in this step skipped) until ``train_batch_size`` groups
        with signal are in or ``max_extra_batches`` extra batches were rolled out.
        """
        episodes = await runner.run(batch, step=state.step, desc=f"/{total} rollout")
        ds = self.cfg.algorithm.dynamic_sampling
        if not ds.enable:
            return episodes, episodes, state, {}
        groups = GroupFilter(len(batch))
        groups.add(episodes)
        while not groups.full and groups.rounds <= ds.max_extra_batches:
            more, after = batch_for(self.train_tasks, state, len(batch), self.cfg.trainer_common.seed)
            state = dataclasses.replace(after, step=state.step)  # the refill moves through the order, not the steps
            fresh = [t for t in more if t.task_id not in groups.seen()]
            new = await runner.run(fresh, step=state.step, desc=f"/{total} refill {groups.rounds}") if fresh else []
            episodes += new
            groups.add(new)
        return episodes, groups.trained(episodes), state, groups.metrics()

    async def _step(self, runner, trainer, sync, batch, state, probe, total) -> tuple[list[Episode], TrainState]:
        t0 = time.monotonic()
        # phase lines mark where a step is (in astuner.log), e.g. for an interruption report
        logger.debug(f"phase rollout step {state.step}")
        episodes, trained, state, sampling = await self._rollout(runner, batch, state, total)
        rollout_s = time.monotonic() - t0
        metrics: dict[str, Any] = {"phase": "train", "epoch": state.epoch, **rollout_metrics(episodes, rollout_s)}
        metrics.update(sampling)
        items = self._train_items(trained, metrics)
        if trainer is not None and items:
            bar = tqdm(
                desc=f"step {state.step}/{total} update",
                unit="mb",
                file=sys.stderr,
                leave=False,
            )
            e = self.cfg.rollout.engine
            # the engine idles while the policy updates: stopped then, its memory is the update's
            stopped = self.server if e.stop_during_update else None
            if stopped is not None:
                logger.debug(f"phase engine_stop step {state.step}")
                metrics["engine_stop_seconds"] = stopped.stop()
            logger.debug(f"phase update step {state.step}")
            try:
                metrics.update(trainer.update(items, progress=bar))
            finally:
                bar.close()
            if self.cfg.debug.optimizer_offload:  # before the engine starts again: its memory is back then
                metrics["optimizer_offload_seconds"] = trainer.offload_optimizer(self.optimizer_file)
            if stopped is not None:
                logger.debug(f"phase engine_start step {state.step}")
                # a seed per step: a restarted engine would otherwise sample from the same random stream again
                metrics["engine_start_seconds"] = stopped.restart(seed=e.seed + state.step)
            t1 = time.monotonic()
            logger.debug(f"phase weight_sync step {state.step}")
            metrics.update(sync.push(trainer.engine_weights()))
            metrics["sync_seconds"] = time.monotonic() - t1
            engine_lp, trainer_lp = sync.prompt_logprobs(probe), trainer.sequence_logprobs(probe)
            metrics["sync_logprob_abs_diff"] = statistics.fmean(
                abs(a - b) for a, b in zip(engine_lp, trainer_lp, strict=True)
            )
            metrics["weights_sha256"] = trainer.weights_hash()[:16]
            trainer.release_memory()  # before the rollout, the engine's busy time
        metrics["step_seconds"] = time.monotonic() - t0
        write_step(self.experiment.trajectories_dir, state.step, episodes)
        assert self.sinks is not None
        self.sinks.log(state.step, metrics)
        groups = (
            f"groups kept {metrics['groups_kept']}/{len(batch)} of {metrics['groups_generated']} rolled out"
            if sampling
            else f"zero-signal groups {metrics['zero_signal_groups']}/{len(batch)}"
        )
        logger.info(
            f"step {state.step}/{total}: reward {metrics['reward_mean']:.3f} ± {metrics['reward_std']:.3f}, "
            f"success {metrics['success_rate']:.1%}, "
            f"{tool_use_text(metrics)}, {metrics['tool_calls_per_episode']:.1f} tool calls and "
            f"{metrics['turns_per_episode']:.1f} turns per episode, "
            f"failed {metrics['episodes_failed'] + metrics['episodes_timeout']}, {groups}, "
            f"rollout {rollout_s:.0f}s, train {metrics.get('train_seconds', 0):.0f}s, "
            f"sync {metrics.get('sync_seconds', 0):.1f}s"
            + (f", engine restart {metrics['engine_start_seconds']:.0f}s" if "engine_start_seconds" in metrics else "")
        )
        return episodes, state

    def _train_items(self, episodes: list[Episode], metrics: dict[str, Any]):
        """Every sample of the episodes that enter their group, with the episode's advantage.

        Zero-advantage samples stay (they count in the token mean, as on verl and Trinity; the trainer
        skips their forward pass when they cannot change the loss).
        """
        from astuner.backbone.debug.trainer import TrainItem

        members = [e for e in episodes if enters_group(e)]
        rewards = [float(e.reward) for e in members]  # type: ignore[arg-type]
        groups = [e.task_id for e in members]
        tokens = [sum(sum(s.loss_mask) for s in e.samples) for e in members]
        a = self.cfg.algorithm
        advantages = compute_advantages(a.adv_estimator, rewards, groups, a.norm_adv_by_std, tokens) if members else []
        metrics["zero_signal_groups"] = zero_signal_groups(rewards, groups) if members else 0
        metrics["advantage_abs_mean"] = statistics.fmean(abs(x) for x in advantages) if advantages else 0.0
        for e, adv in zip(members, advantages, strict=True):
            e.advantage = adv  # recorded with the episode (logview shows it)
        items = [TrainItem(s, adv) for e, adv in zip(members, advantages, strict=True) for s in e.samples]
        metrics["samples_trained"] = sum(1 for i in items if i.advantage != 0.0)
        metrics["samples_zero_advantage"] = len(items) - metrics["samples_trained"]
        return items

    async def _validate(self, runner: RolloutRunner, step: int) -> None:
        if not self.val_tasks:
            return
        greedy = tuner_settings(self.cfg, temperature=0.0)
        greedy = dataclasses.replace(greedy, seed=runner.settings.tuner.seed)
        t0 = time.monotonic()
        episodes = await runner.run(self.val_tasks, step=step, num_repeat=1, tuner=greedy, desc="validation")
        m = rollout_metrics(episodes, time.monotonic() - t0)
        write_step(self.experiment.trajectories_dir, step, episodes, kind="val")
        assert self.sinks is not None
        self.sinks.log(step, {"phase": "validation", **{f"val/{k}": v for k, v in m.items()}})
        logger.info(
            f"validation at step {step}: reward {m['reward_mean']:.3f}, success {m['success_rate']:.1%}, "
            f"{tool_use_text(m)} ({len(episodes)} tasks, greedy)"
        )
