"""Run tasks × num_repeat episodes of a workflow concurrently, in one event loop.

Each episode gets a fresh workflow instance and a fresh ``ModelTuner``; at most
``rollout.max_env_worker`` run at once (a semaphore); each has ``rollout.episode_timeout`` seconds.
An exception or a timeout marks that episode failed, with its traceback in the log and the records,
and never crashes the batch: failures are data. After the workflow returns, the judge scores it
(when the workflow left ``reward=None``), madness checks may override the reward, and the recorded
calls are merged into training samples. Episodes of the same task form one group (GRPO).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from tqdm import tqdm

from astuner.context.merge import merge_calls
from astuner.context.types import LLMCall, Sample, jsonable
from astuner.engine.protocol import Engine
from astuner.task_judge.base_judge import BaseJudge
from astuner.task_reader.task import Task
from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.model_tuner import ModelTuner, TunerSettings
from astuner.workflow.base import Workflow, WorkflowOutput, WorkflowTask


@dataclass(frozen=True)
class RolloutSettings:
    """What the runner needs from ``astuner.rollout`` / ``astuner.data``."""

    num_repeat: int
    max_env_worker: int
    episode_timeout: float
    madness_checklist: tuple[str, ...]
    madness_reward: float
    max_prompt_length: int
    max_response_length: int
    max_samples_per_task: int
    tuner: TunerSettings


@dataclass
class Episode:
    """One finished (or failed) episode.

    Attributes:
        status: ``ok``, ``failed`` (the workflow or judge raised, or the reward was not a number)
            or ``timeout``.
        reward / is_success: final values (after madness); None for failed episodes.
        advantage: set by the backbone once advantages are computed (None: not trained on).
        madness: triggered checks from the checklist; the reward was forced to agent_madness_reward.
        samples: training samples (empty for failed episodes).
        metrics: calls, samples, tokens merged vs unmerged, drift, generated tokens, seconds.
    """

    episode_id: str
    task_id: str
    repeat_index: int
    status: str
    reward: float | None = None
    is_success: bool | None = None
    advantage: float | None = None
    madness: list[str] = field(default_factory=list)
    error: str | None = None
    context_overflow: bool = False
    output_metadata: dict[str, Any] = field(default_factory=dict)
    calls: list[LLMCall] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "task_id": self.task_id,
            "repeat_index": self.repeat_index,
            "status": self.status,
            "reward": self.reward,
            "is_success": self.is_success,
            "advantage": self.advantage,
            "madness": self.madness,
            "error": self.error,
            "context_overflow": self.context_overflow,
            "output_metadata": jsonable(self.output_metadata),
            "metrics": self.metrics,
            "calls": [c.to_dict() for c in self.calls],
            "samples": [s.to_dict() for s in self.samples],
        }


class RolloutRunner:
    """Runs episodes against one engine.

    Args:
        engine: token-in/token-out inference.
        renderer: the policy's chat template (shared; it is stateless).
        workflow_cls: the user's Workflow subclass (instantiated per episode).
        judge: used when a workflow returns ``reward=None``; may be None if workflows always set it.
        settings: limits and rules.
    """

    def __init__(
        self,
        engine: Engine,
        renderer: ChatRenderer,
        workflow_cls: type[Workflow],
        judge: BaseJudge | None,
        settings: RolloutSettings,
    ):
        self.engine, self.renderer, self.workflow_cls, self.judge, self.settings = (
            engine,
            renderer,
            workflow_cls,
            judge,
            settings,
        )

    async def run(
        self,
        tasks: Sequence[Task],
        *,
        step: int = 0,
        num_repeat: int | None = None,
        tuner: TunerSettings | None = None,
        desc: str = "rollout",
    ) -> list[Episode]:
        """Run ``num_repeat`` episodes of every task; returns them grouped by task, in task order."""
        repeat = num_repeat or self.settings.num_repeat
        jobs = [(task, r) for task in tasks for r in range(repeat)]
        gate = asyncio.Semaphore(self.settings.max_env_worker)
        bar = tqdm(
            total=len(jobs), desc=f"step {step} {desc}", unit="ep", file=sys.stderr, mininterval=2.0, dynamic_ncols=True
        )
        state = {"failed": 0, "tokens": 0, "start": time.monotonic()}

        async def one(task: Task, r: int) -> Episode:
            async with gate:
                episode = await self.run_episode(task, r, step, tuner or self.settings.tuner)
            state["failed"] += episode.status != "ok"
            state["tokens"] += int(episode.metrics.get("generated_tokens", 0))
            rate = state["tokens"] / max(1e-6, time.monotonic() - state["start"])
            bar.set_postfix(failed=state["failed"], tok_s=f"{rate:.0f}", refresh=False)
            bar.update(1)
            return episode

        try:
            return list(await asyncio.gather(*(one(t, r) for t, r in jobs)))
        finally:
            bar.close()

    async def run_episode(self, task: Task, repeat_index: int, step: int, tuner_settings: TunerSettings) -> Episode:
        episode_id = f"s{step}-{task.task_id}-r{repeat_index}"
        tuner = ModelTuner(self.engine, self.renderer, tuner_settings, episode_id=episode_id)
        wtask = WorkflowTask(task=task, episode_id=episode_id, repeat_index=repeat_index)
        started = time.monotonic()
        episode = Episode(episode_id=episode_id, task_id=task.task_id, repeat_index=repeat_index, status="ok")
        try:
            output = await asyncio.wait_for(self.workflow_cls().execute(wtask, tuner), self.settings.episode_timeout)
            if not isinstance(output, WorkflowOutput):
                raise TypeError(
                    f"{self.workflow_cls.__qualname__}.execute returned {type(output).__name__}, "
                    "expected WorkflowOutput"
                )
            episode.output_metadata = dict(output.metadata)
            episode.reward, episode.is_success = await self._score(wtask, output)
        except asyncio.TimeoutError:
            episode.status = "timeout"
            episode.error = f"episode exceeded rollout.episode_timeout = {self.settings.episode_timeout:g}s"
            logger.warning(f"{episode_id}: {episode.error}")
        except Exception as exc:  # any failure of user code is data, not a crash
            episode.status = "failed"
            episode.error = "".join(traceback.format_exception(exc))
            logger.warning(f"{episode_id} failed: {type(exc).__name__}: {exc}")
            logger.debug(f"{episode_id} traceback:\n{episode.error}")
        episode.calls = list(tuner.calls)
        episode.context_overflow = tuner.context_overflow
        self._finish(episode, time.monotonic() - started)
        return episode

    async def _score(self, wtask: WorkflowTask, output: WorkflowOutput) -> tuple[float, bool]:
        reward, success = output.reward, output.is_success
        if reward is None:
            if self.judge is None:
                raise ValueError("the workflow returned reward=None and no task_judge.judge_protocol is configured")
            result = self.judge.compute_reward(wtask, output)
            if inspect.isawaitable(result):
                result = await result
            reward, judged_success = result
            success = judged_success if success is None else success
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward is {reward}; rewards must be finite numbers")
        return reward, bool(success) if success is not None else reward > 0

    def _finish(self, episode: Episode, seconds: float) -> None:
        s = self.settings
        triggered = sorted({name for c in episode.calls for name in c.madness} & set(s.madness_checklist))
        if episode.status == "ok" and triggered:
            episode.madness, episode.reward, episode.is_success = triggered, s.madness_reward, False
        merged = merge_calls(episode.calls, s.max_prompt_length, s.max_response_length, s.max_samples_per_task)
        if episode.status == "ok":
            episode.samples = merged.samples
        episode.metrics = {
            "calls": len(episode.calls),
            **merged.metrics(),
            "generated_tokens": sum(len(c.response_ids) for c in episode.calls),
            "spliced_turns": sum(c.spliced for c in episode.calls),
            "seconds": round(seconds, 3),
        }
