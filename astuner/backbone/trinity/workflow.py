"""The adapter: one Trinity ``Workflow`` that runs an astuner workflow's episodes for one task.

Trinity-RFT 0.6.0 instantiates the class named by ``buffer.explorer_input.default_workflow_type``
(a dotted path) inside its ``WorkflowRunner`` Ray actors, once per task, with the rollout
engine's ``ModelWrapper``. We rebuild the astuner task from the task row, run the user's workflow
through astuner's own ``RolloutRunner.run_episode`` (the same recording, merging, madness checks and
judge as the debug backbone, unchanged), with a ``ModelTuner`` whose engine is the rollout engine's
OpenAI-compatible server used token-in/token-out (``/v1/completions`` with prompt ids, sampled ids
and logprobs back: astuner's ``VllmEngine``), and return every merged sample as an ``Experience``.

Why ``can_repeat``: Trinity then hands the workflow all ``repeat_times`` runs of a task at once
(``set_repeat_times``), so the episodes of one GRPO group run concurrently on one event loop, and
each experience gets its run id (``eid.run``) from us. Multi-timeline episodes give one experience
per timeline, numbered by ``eid.step``: Trinity's step-wise GRPO gives each the run's advantage.

A failed or timed-out episode is left out of its group's statistics, as on the debug backbone and
verl: it gives one untrained placeholder experience in a group of its own (``episode_experiences``
says why); its failure and traceback are in the records.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

from trinity.common.experience import EID, Experience
from trinity.common.workflows.workflow import Task as TrinityTask
from trinity.common.workflows.workflow import Workflow

from astuner.algo.semantics import enters_group
from astuner.backbone.spec import load_spec, record_episode, task_from_json, worker_runner
from astuner.backbone.trinity.config import SPEC_ARG
from astuner.engine.vllm_client import VllmEngine
from astuner.rollout.build import env_sessions, load_tokenizer, tuner_settings
from astuner.rollout.runner import Episode


@functools.lru_cache(maxsize=2)
def _tokenizer(model_path: str) -> Any:
    """The policy's tokenizer, once per runner process (every task of the run uses it)."""
    return load_tokenizer(Path(model_path))


def episode_experiences(episode: Episode, run_id: int) -> list[Experience]:
    """Trinity experiences for an episode: one per merged sample (timeline), ``eid.step`` = its index.

    Tokens are the sample's prompt then response; ``action_mask`` is astuner's loss mask (1 on
    sampled tokens, 0 on inserted context) and ``logprobs`` the engine's, 0.0 where masked. An
    episode outside its group (``semantics.enters_group``: failed, timed out, or every sample
    dropped) gives one untrained placeholder instead, in a group of its own (``eid.task``, which
    Trinity's runner keeps when set): it enters no group's statistics (a lone member with reward 0
    has advantage 0, and no trained token), yet every task still gives ``repeat_times`` experiences,
    so Trinity's trainer, which reads exactly ``batch_size x repeat_times`` of them per step, trains
    on one explorer step at a time instead of waiting for the missing ones.
    """
    info = {"astuner_episode_id": episode.episode_id, "astuner_task_id": episode.task_id}
    if not enters_group(episode):
        return [
            Experience(
                eid=EID(run=run_id, step=0, task=f"astuner-outside-group/{episode.episode_id}"),
                tokens=[0, 0],
                prompt_length=1,
                logprobs=[0.0],
                action_mask=[False],
                reward=0.0,
                info={**info, "astuner_outside_group": True},
            )
        ]
    metrics = {
        "astuner/reward": float(episode.reward),  # type: ignore[arg-type]
        "astuner/success": float(bool(episode.is_success)),
        "astuner/madness": float(bool(episode.madness)),
        **{f"astuner/{k}": float(v) for k, v in episode.metrics.items()},
    }
    return [
        Experience(
            eid=EID(run=run_id, step=step),
            tokens=[*sample.prompt_ids, *sample.response_ids],
            prompt_length=len(sample.prompt_ids),
            logprobs=list(sample.logprobs),
            action_mask=[bool(m) for m in sample.loss_mask],
            reward=float(episode.reward),  # type: ignore[arg-type]
            truncate_status="response_truncated" if sample.response_truncated else None,
            info=dict(info),
            metrics=dict(metrics),
        )
        for step, sample in enumerate(episode.samples)
    ]


def _step_of(batch_id: int | str) -> int:
    """Trinity's explorer step from a task's ``batch_id`` (an int for training, ``"<step>/<name>"`` for eval)."""
    head = str(batch_id).split("/", 1)[0]
    return int(head) if head.isdigit() else 0


class AstunerTrinityWorkflow(Workflow):
    """Runs the ``repeat_times`` astuner episodes of one task and returns their experiences.

    Args (Trinity's, passed through to ``Workflow``):
        task: Trinity's task; ``raw_task["astuner_task"]`` holds the astuner ``Task`` as JSON and
            ``workflow_args["astuner_run"]`` the path of the run spec (both written by ``run.py``).
        model: the rollout engine's ``ModelWrapper`` (its OpenAI-compatible server must be on:
            ``explorer.rollout_model.enable_openai_api``, which the translation sets).
        auxiliary_models: unused.
    """

    is_async = True
    can_repeat = True

    def __init__(self, *, task: TrinityTask, model: Any, auxiliary_models: list[Any] | None = None):
        super().__init__(task=task, model=model, auxiliary_models=auxiliary_models)
        self.spec_path = str(task.workflow_args[SPEC_ARG])
        self.spec, self.astuner = load_spec(self.spec_path)
        self.repeat_times = 1

    def set_repeat_times(self, repeat_times: int, run_id_base: int) -> None:
        self.repeat_times, self.run_id_base = repeat_times, run_id_base

    async def run_async(self) -> list[Experience]:
        if self.model.api_address is None:
            await self.model.prepare()  # finds the engine's server address (Trinity's runner did it already)
        task = task_from_json(self.task.raw_task["astuner_task"])
        engine = VllmEngine(self.model.api_address, self.model.model_path)  # served under its model path
        env = env_sessions(self.astuner)
        runner = worker_runner(self.spec_path, _tokenizer(self.model.model_path)).bind(engine, env)
        # Validation is greedy, as in the debug backbone; training samples at rollout.temperature.
        settings = tuner_settings(self.astuner, temperature=0.0 if self.task.is_eval else None)
        step = _step_of(self.task.batch_id)
        try:
            episodes = await asyncio.gather(
                *(runner.run_episode(task, self.run_id_base + r, step, settings) for r in range(self.repeat_times))
            )
        finally:
            await engine.aclose()
            if env is not None:
                await env.aclose()
        prefix = "trinity_val" if self.task.is_eval else "trinity"
        for episode in episodes:
            record_episode(Path(self.spec.trajectories_dir), prefix, step, episode)
        experiences = [x for e in episodes for x in episode_experiences(e, e.repeat_index)]
        if not experiences:
            raise RuntimeError(_no_experience_message(task.task_id, episodes))
        return experiences


def _no_experience_message(task_id: str, episodes: list[Episode]) -> str:
    failed = [e for e in episodes if e.status != "ok"]
    if not failed:
        return f"task {task_id}: no episode left a training sample (prompts over data.max_prompt_length?)"
    last = (failed[0].error or failed[0].status).strip().splitlines()[-1:] or [""]
    return f"task {task_id}: all {len(episodes)} episodes failed ({len(failed)} failed); first: {last[0]}"


__all__ = ["AstunerTrinityWorkflow", "episode_experiences"]
