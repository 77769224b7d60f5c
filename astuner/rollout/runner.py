"""Run tasks × num_repeat episodes of a workflow concurrently, in one event loop.

Each episode gets a fresh workflow instance and a fresh ``ModelTuner``; at most
``rollout.max_env_worker`` run at once (a semaphore); each has ``rollout.episode_timeout`` seconds.
An exception or a timeout marks that episode failed, with its traceback in the log and the records,
and never crashes the batch: failures are data. After the workflow returns, the judge scores it
(when the workflow left ``reward=None``), madness checks may override the reward, and the recorded
calls are merged into training samples. Episodes of the same task form one group (GRPO).

With an environment service (``env``), each episode first creates its environment instance
(``workflow_task.env``; a failed ``/create`` fails the episode like any other error) and releases it
in a ``finally`` once the workflow and the judge are done, whatever happened to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import math
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from tqdm import tqdm

from astuner.config.view import ComposedConfig
from astuner.context.merge import merge_calls
from astuner.context.types import LLMCall, Sample, jsonable
from astuner.engine.protocol import Engine, PerEpisodeEngine
from astuner.env_service.instance import EnvInstance, EnvSessions
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
    hang_timeout: float = 600.0


class RolloutHangError(RuntimeError):
    """Nothing finished and the engine answered nothing for ``rollout.hang_timeout`` seconds."""


class RolloutFailingError(RuntimeError):
    """Several training steps in a row had no episode that ended ok (``trainer_common.max_failed_steps``)."""


class _Activity:
    """What every episode of a batch is doing right now, for the hang watchdog's report.

    Progress is an episode finishing or an engine completion arriving; phases are ``queued``
    (waiting for a ``max_env_worker`` slot), ``workflow`` (user code), ``engine`` (a request in
    flight), ``env`` (creating or releasing the episode's env service instance) and ``judge``.
    """

    def __init__(self) -> None:
        self.last_progress = self.heartbeat = time.monotonic()
        self.phases: dict[str, tuple[str, float]] = {}

    def set(self, episode_id: str, phase: str) -> None:
        self.phases[episode_id] = (phase, time.monotonic())

    def progress(self) -> None:
        self.last_progress = time.monotonic()

    def done(self, episode_id: str) -> None:
        self.phases.pop(episode_id, None)
        self.progress()

    def report(self, idle: float) -> str:
        now, by_phase = time.monotonic(), {}
        for eid, (phase, since) in self.phases.items():
            by_phase.setdefault(phase, []).append((now - since, eid))
        parts = []
        for phase in ("engine", "env", "workflow", "judge", "queued"):
            waiting = sorted(by_phase.get(phase, []), reverse=True)
            if waiting:
                oldest = ", ".join(f"{eid} ({age:.0f}s)" for age, eid in waiting[:3])
                parts.append(f"{len(waiting)} in {_PHASE_TEXT[phase]} (longest: {oldest})")
        return (
            f"rollout hung: no episode finished and the engine returned nothing for {idle:.0f}s "
            f"(rollout.hang_timeout); waiting: {'; '.join(parts) or 'nothing'}"
        )


_PHASE_TEXT = {
    "engine": "an engine request",
    "env": "an env service call (create/release)",
    "workflow": "workflow code",
    "judge": "the judge",
    "queued": "the queue for a max_env_worker slot",
}


class _TrackedEngine:
    """The engine as one episode sees it: marks the episode's phase and every completion."""

    def __init__(self, engine: Engine, activity: _Activity, episode_id: str):
        self._engine, self._activity, self._episode_id = engine, activity, episode_id

    async def generate(self, prompt_ids, sampling):
        self._activity.set(self._episode_id, "engine")
        try:
            return await self._engine.generate(prompt_ids, sampling)
        finally:
            self._activity.progress()
            self._activity.set(self._episode_id, "workflow")


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
        metrics: calls, samples, tokens merged vs unmerged, drift, tool-call parse failures, OpenAI
            parameters the gateway ignored, generated tokens, seconds.
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
    turn_limit_reached: bool = False
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
            "turn_limit_reached": self.turn_limit_reached,
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
        env: opens and releases per-episode environment instances (``task_reader.type: env_service``).
        config: the run's whole config, read-only; every episode's ``model_tuner.config``.
    """

    def __init__(
        self,
        engine: Engine | None,
        renderer: ChatRenderer,
        workflow_cls: type[Workflow],
        judge: BaseJudge | None,
        settings: RolloutSettings,
        env: EnvSessions | None = None,
        config: ComposedConfig | None = None,
    ):
        self.engine, self.renderer, self.workflow_cls, self.judge, self.settings = (
            engine,
            renderer,
            workflow_cls,
            judge,
            settings,
        )
        self.env = env
        self.config = config

    def bind(self, engine: Engine, env: EnvSessions | None = None) -> RolloutRunner:
        """This runner with another engine and env sessions; the workflow class, judge, renderer and
        settings are shared, not rebuilt. Why: a backbone adapter builds those once per worker and
        binds each episode's own engine (verl's sticky request id) and clients, which it closes."""
        bound = copy.copy(self)
        bound.engine, bound.env = engine, env
        return bound

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
        activity = _Activity()

        async def one(task: Task, r: int) -> Episode:
            activity.set(self.episode_id(task, r, step), "queued")
            async with gate:
                episode = await self.run_episode(task, r, step, tuner or self.settings.tuner, activity)
            activity.done(episode.episode_id)
            state["failed"] += episode.status != "ok"
            state["tokens"] += int(episode.metrics.get("generated_tokens", 0))
            rate = state["tokens"] / max(1e-6, time.monotonic() - state["start"])
            bar.set_postfix(failed=state["failed"], tok_s=f"{rate:.0f}", refresh=False)
            bar.update(1)
            return episode

        episodes = asyncio.ensure_future(asyncio.gather(*(one(t, r) for t, r in jobs)))
        try:
            if self.settings.hang_timeout <= 0:
                finished = list(await episodes)
            else:
                finished = list(await self._watched(episodes, activity))
        finally:
            if not episodes.done():
                episodes.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await episodes
            bar.close()
        failed = [e for e in finished if e.status != "ok"]
        if failed:
            first = (failed[0].error or "").strip().splitlines()[-1:] or [""]
            logger.warning(f"step {step} {desc}: {len(failed)} of {len(finished)} episodes failed; first: {first[0]}")
        return finished

    async def _watched(self, episodes: asyncio.Future, activity: _Activity) -> list[Episode]:
        """Await ``episodes``; raise RolloutHangError when nothing progresses for hang_timeout.

        The check runs in the event loop, so it needs the loop to turn. A workflow that blocks the
        loop with synchronous code is caught by a thread instead (``_BlockedLoopWatch``).
        """
        limit = self.settings.hang_timeout
        tick = min(5.0, limit / 4)
        with _BlockedLoopWatch(activity, limit):
            while True:
                done, _ = await asyncio.wait({episodes}, timeout=tick)
                if done:
                    return episodes.result()
                activity.heartbeat = time.monotonic()
                idle = time.monotonic() - activity.last_progress
                if idle >= limit:
                    message = activity.report(idle)
                    logger.error(message)
                    raise RolloutHangError(message)

    @staticmethod
    def episode_id(task: Task, repeat_index: int, step: int) -> str:
        return f"s{step}-{task.task_id}-r{repeat_index}"

    async def run_episode(
        self,
        task: Task,
        repeat_index: int,
        step: int,
        tuner_settings: TunerSettings,
        activity: _Activity | None = None,
    ) -> Episode:
        episode_id = self.episode_id(task, repeat_index, step)
        activity = activity or _Activity()
        activity.set(episode_id, "workflow")
        assert self.engine is not None, "a runner built without an engine is bound to one per episode (bind)"
        base = self.engine.for_episode(episode_id) if isinstance(self.engine, PerEpisodeEngine) else self.engine
        engine = _TrackedEngine(base, activity, episode_id)
        tuner = ModelTuner(engine, self.renderer, tuner_settings, episode_id=episode_id, config=self.config)
        started = time.monotonic()
        episode = Episode(episode_id=episode_id, task_id=task.task_id, repeat_index=repeat_index, status="ok")
        instance: EnvInstance | None = None
        try:
            if self.env is not None:
                activity.set(episode_id, "env")
                instance = await self.env.open(task, episode_id)
                task = instance.task
                activity.set(episode_id, "workflow")
            wtask = WorkflowTask(task=task, episode_id=episode_id, repeat_index=repeat_index, env=instance)
            try:
                output = await asyncio.wait_for(
                    self.workflow_cls().execute(wtask, tuner), self.settings.episode_timeout
                )
            except Exception:
                # past max_steps the call raised TurnLimitReached, or (through the OpenAI endpoint) the
                # client raised on the 409 it got: either way the episode was cut off, not failed
                if not tuner.turn_limit_reached:
                    raise
                output = None
            finally:
                tuner.close()
            if tuner.turn_limit_reached:
                # Cut off by rollout.multi_turn.max_steps: it did not finish, so it is not judged.
                episode.turn_limit_reached = True
                episode.reward, episode.is_success = 0.0, False
            else:
                if not isinstance(output, WorkflowOutput):
                    raise TypeError(
                        f"{self.workflow_cls.__qualname__}.execute returned {type(output).__name__}, "
                        "expected WorkflowOutput"
                    )
                episode.output_metadata = dict(output.metadata)
                activity.set(episode_id, "judge")
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
        finally:
            if instance is not None:
                assert self.env is not None
                activity.set(episode_id, "env")
                await self.env.release(instance)
        episode.calls = list(tuner.calls)
        episode.context_overflow = tuner.context_overflow
        self._finish(episode, time.monotonic() - started)
        episode.metrics.update(tuner.llm.counters)
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
            "tool_call_parse_failures": sum(c.tool_call_parse_failures for c in episode.calls),
            "tool_calls": sum(c.tool_calls for c in episode.calls),
            **tool_call_counts(episode.calls),
            "seconds": round(seconds, 3),
        }


def tool_call_counts(calls: Sequence[LLMCall]) -> dict[str, int]:
    """``tool_calls/<tool>``: how often the episode called each tool, for agents with several tools (the step's
    ``tool_use_rate/<tool>`` comes from these: whether the agent used the tool that does the work, or only,
    say, the one that hands in its answer)."""
    counts: dict[str, int] = {}
    for call in calls:
        for tool in call.tool_names:
            counts[f"tool_calls/{tool}"] = counts.get(f"tool_calls/{tool}", 0) + 1
    return counts


class _BlockedLoopWatch:
    """A thread that notices when the event loop itself stops turning.

    A workflow that calls blocking code (``time.sleep``, a synchronous HTTP call that never
    returns) freezes the loop, so no coroutine can notice. This thread can: when the loop's
    heartbeat is older than ``limit`` it logs where the loop's thread is stuck and, when the loop
    runs in the main thread, raises ``RolloutHangError`` right there (via SIGUSR1, whose handler
    runs in the main thread as soon as the blocking call returns to Python). The blocking
    episode then fails like any other exception in user code, and the step goes on. Elsewhere it
    only logs: a signal cannot be aimed at another thread's Python code.
    """

    def __init__(self, activity: _Activity, limit: float):
        self.activity, self.limit = activity, limit
        self.loop_thread = threading.get_ident()
        self.in_main = self.loop_thread == threading.main_thread().ident
        self._message = ""
        self._fired_at = 0.0
        self._previous: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="astuner-hang-watch", daemon=True)

    def __enter__(self) -> _BlockedLoopWatch:
        if self.in_main:
            self._previous = signal.signal(signal.SIGUSR1, self._raise_in_loop)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.in_main:
            signal.signal(signal.SIGUSR1, self._previous)

    def _raise_in_loop(self, signum: int, frame: Any) -> None:
        # only while the loop is still stuck where the thread saw it (not if it moved on meanwhile)
        if self._message and self.activity.heartbeat == self._fired_at:
            message, self._message = self._message, ""
            raise RolloutHangError(message)

    def _watch(self) -> None:
        tick = min(5.0, self.limit / 4)
        reported = 0.0
        while not self._stop.wait(tick):
            blocked = time.monotonic() - max(self.activity.heartbeat, reported)
            if blocked < self.limit + tick:
                continue
            frame = sys._current_frames().get(self.loop_thread)
            where = "".join(traceback.format_stack(frame, limit=4)) if frame else "(unknown)\n"
            self._message = (
                f"the event loop was blocked for {blocked:.0f}s (rollout.hang_timeout) by synchronous code "
                f"in a workflow or judge, at:\n{where}"
            )
            logger.error(f"rollout hung: {self._message.rstrip()}")
            self._fired_at = self.activity.heartbeat
            if self.in_main:
                signal.pthread_kill(self.loop_thread, signal.SIGUSR1)
            reported = time.monotonic()  # one report per blocking stretch
