"""The adapter: one verl agent loop that runs an astuner workflow episode.

verl 0.9.1 calls ``AgentLoopBase.run(sampling_params, **row)`` once per sample (each of the
``rollout.n`` repeats of a task) inside its ``AgentLoopWorker`` Ray actors. We rebuild the task from
the row, run the user's workflow through astuner's own ``RolloutRunner.run_episode`` (the same
recording, merging, madness checks and judge as the debug backbone, unchanged), with a
``ModelTuner`` whose engine is verl's ``server_manager.generate`` (token ids in and out), and
return the merged samples as ``AgentLoopOutput``: one per timeline (verl's v1 trainer accepts a
list; ``config.algorithm_issues`` rejects the legacy trainer, which takes exactly one).

Why ``__init__`` passes its arguments through untouched: the constructor of ``AgentLoopBase``
changed in every verl minor release; we take only our own keyword (``astuner_run``, from the
generated agent-loop YAML) and hand the rest to verl as received.

A failed or timed-out episode, or one whose samples were all dropped (prompt over
``data.max_prompt_length``), gives verl no output (an empty list): it is then no member of its
group's GRPO mean and std, exactly as on the debug backbone and Trinity. The failure and its
traceback are in the records.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path
from typing import Any

from verl.experimental.agent_loop import AgentLoopBase, AgentLoopOutput
from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics

from astuner.algo.semantics import enters_group
from astuner.backbone.spec import load_spec, record_episode, worker_runner
from astuner.backbone.verl.tasks import task_from_extra_info
from astuner.engine.protocol import Completion, EngineError, SamplingParams
from astuner.rollout.build import env_sessions, tuner_settings
from astuner.rollout.runner import Episode


def structured_outputs(spec: dict[str, Any]) -> Any:
    """astuner's constraint (``{"regex"|"json"|"structural_tag": ...}``) as vLLM's ``StructuredOutputsParams``.

    Why the vLLM object: verl's vLLM server builds ``SamplingParams(max_tokens=..., **sampling_params)``,
    so only the object itself (pickled through Ray) reaches vLLM intact; a plain dict would not.
    """
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        raise EngineError(
            "constrained decoding (tool_choice 'required'/a tool name, structured_model) through verl needs vllm "
            "in the verl environment (GPU install); this one has none"
        ) from None
    return StructuredOutputsParams(**spec)


class VerlEngine:
    """astuner's ``Engine`` over verl's ``server_manager.generate`` (one episode, one sticky request id).

    Args:
        server_manager: verl's ``LLMServerClient`` given to the agent loop.
        request_id: one id per episode, so verl keeps every turn on the same server (prefix cache).
        base_params: verl's per-batch sampling params (e.g. ``repetition_penalty``), kept as given.
    """

    def __init__(self, server_manager: Any, request_id: str, base_params: dict[str, Any]):
        self.server_manager, self.request_id = server_manager, request_id
        self.base_params = {k: v for k, v in base_params.items() if k not in ("temperature", "top_p", "top_k")}
        # verl's weight versions seen by this episode (first and last call): its v1 trainer reads them
        # from every output as ``min_global_steps`` / ``max_global_steps`` (staleness metrics).
        self.min_global_steps: int | None = None
        self.max_global_steps: int | None = None

    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        params = {
            **self.base_params,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "max_tokens": sampling.max_tokens,
            "logprobs": True,
        }
        if sampling.stop_token_ids:
            params["stop_token_ids"] = list(sampling.stop_token_ids)
        if sampling.structured is not None:
            params["structured_outputs"] = structured_outputs(sampling.structured)
        out = await self.server_manager.generate(self.request_id, prompt_ids=list(prompt_ids), sampling_params=params)
        if out.stop_reason == "aborted":
            raise EngineError("verl aborted the request (rollout interrupted)")
        if out.log_probs is None or len(out.log_probs) != len(out.token_ids):
            raise EngineError("verl returned no logprob per token; actor_rollout_ref.rollout.calculate_log_probs")
        first, last = out.extra_fields.get("min_global_steps"), out.extra_fields.get("max_global_steps")
        if self.min_global_steps is None and first is not None:
            self.min_global_steps = int(first)
        if last is not None:
            self.max_global_steps = int(last)
        finish = "length" if len(out.token_ids) >= sampling.max_tokens else "stop"
        return Completion(list(out.token_ids), [float(x) for x in out.log_probs], finish)


def episode_outputs(episode: Episode, seconds: float, versions: tuple[int, int]) -> list[AgentLoopOutput]:
    """verl outputs for an episode: one per merged sample; none for an episode outside its group.

    ``semantics.enters_group`` decides (as on the debug backbone and Trinity): a failed or timed-out
    episode, or one whose samples were all dropped, gives an empty list, which verl's v1 agent-loop
    worker accepts ("Empty output" in its log): the episode is then no member of its GRPO group, and
    verl pads the smaller batch with untrained rows. ``versions`` is the (first, last) weight version
    the episode generated with; verl's v1 trainer needs both on every output.
    """
    if not enters_group(episode):
        return []
    metrics = AgentLoopMetrics(generate_sequences=seconds)
    # reward_extra_info: verl's v1 worker copies it from the last output to the others of a list.
    extra = {
        "astuner_episode_id": episode.episode_id,
        "astuner_status": episode.status,
        "reward_extra_info": {},
        "min_global_steps": versions[0],
        "max_global_steps": versions[1],
    }
    return [
        AgentLoopOutput(
            prompt_ids=s.prompt_ids,
            response_ids=s.response_ids,
            response_mask=s.loss_mask,
            response_logprobs=s.logprobs,
            reward_score=float(episode.reward),  # type: ignore[arg-type]
            num_turns=len(s.call_indices),
            metrics=metrics,
            extra_fields=dict(extra),
        )
        for s in episode.samples
    ]


class AstunerAgentLoop(AgentLoopBase):
    """Runs one astuner workflow episode per verl sample.

    Args:
        astuner_run: path of the ``RunSpec`` JSON (set in the generated agent-loop YAML).
        *args / **kwargs: verl's constructor arguments, passed through untouched.
    """

    def __init__(self, *args: Any, astuner_run: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.spec_path = astuner_run
        self.spec, self.astuner = load_spec(astuner_run)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput | list[AgentLoopOutput]:
        task = task_from_extra_info(kwargs["extra_info"])
        engine = VerlEngine(self.server_manager, uuid.uuid4().hex, sampling_params)
        settings = dataclasses.replace(
            tuner_settings(self.astuner, temperature=float(sampling_params.get("temperature", 1.0))),
            top_p=float(sampling_params.get("top_p", 1.0)),
            top_k=int(sampling_params.get("top_k", -1)),
        )
        started = time.monotonic()
        env = env_sessions(self.astuner)
        try:
            # v1 passes the repeat as session_id; the legacy worker passes nothing (episode ids then repeat).
            runner = worker_runner(self.spec_path, self.tokenizer).bind(engine, env)
            episode = await runner.run_episode(task, int(kwargs.get("session_id", 0)), 0, settings)
        finally:
            if env is not None:
                await env.aclose()
        # The dataloader step (verl passes it with each row; the legacy trainer does not), else the weights'.
        step = int(kwargs.get("global_steps", engine.max_global_steps if engine.max_global_steps is not None else 0))
        first = engine.min_global_steps if engine.min_global_steps is not None else step
        last = engine.max_global_steps if engine.max_global_steps is not None else first
        prefix = "verl_val" if kwargs["extra_info"].get("split") == "val" else "verl"
        record_episode(Path(self.spec.trajectories_dir), prefix, step, episode)
        outputs = episode_outputs(episode, time.monotonic() - started, (first, last))
        return outputs[0] if len(outputs) == 1 else outputs
