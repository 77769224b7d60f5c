"""Fault injection for rollouts: faults injected on purpose, to prove that none of them crashes a step.

A *campaign* runs steps of episodes on a real engine through the real ``RolloutRunner``, with a
chosen share of episodes given one fault each, round-robin over ``FAULT_KINDS``:

- ``workflow_raises``: the workflow raises after its first model call;
- ``workflow_hangs``: the workflow awaits forever (the episode timeout must end it);
- ``malformed_tool_call``: the engine's answer is replaced by a ``<tool_call>`` that does not parse;
- ``engine_5xx`` / ``engine_drop``: the episode's requests go through a local proxy that answers
  HTTP 500 / closes the connection without an answer, so the real client's retries run out;
- ``engine_flaky``: the proxy fails each request's first attempt and forwards the retry, which
  must succeed;
- ``judge_raises``: the judge raises for that episode;
- ``nan_reward``: the workflow returns ``reward=nan``.

Every episode must end in exactly the outcome its fault predicts (``EXPECTED``), healthy episodes
must keep all their samples, and each step's records must hold every episode. ``Campaign`` returns
the figures; ``tests/e2e/test_fault_injection.py`` asserts them and ``bench/reliability.py``
prints them for 1000 episodes.
"""

from __future__ import annotations

import asyncio
import contextvars
import http.client
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from astuner.algo.advantages import compute_advantages
from astuner.engine.protocol import Completion, Engine, SamplingParams
from astuner.engine.vllm_client import VllmEngine
from astuner.records.trajectories import read_step, write_step
from astuner.rollout.runner import RolloutRunner, RolloutSettings
from astuner.task_judge.base_judge import BaseJudge, JudgeResult
from astuner.task_reader.task import Task
from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.model_tuner import TunerSettings
from astuner.workflow.base import Workflow, WorkflowOutput, WorkflowTask

FAULT_KINDS = (
    "workflow_raises",
    "workflow_hangs",
    "malformed_tool_call",
    "engine_5xx",
    "engine_drop",
    "engine_flaky",
    "judge_raises",
    "nan_reward",
)
# Outcome of an episode: its status, or "mad" for an ok episode whose reward madness overrode.
# A healthy episode may be "mad" on its own: a small model at temperature 1 does produce broken
# tool calls and repetitions; that is the madness check working, not a fault.
_HEALTHY = frozenset({"ok", "mad"})
EXPECTED: dict[str | None, frozenset[str]] = {
    None: _HEALTHY,
    "workflow_raises": frozenset({"failed"}),
    "workflow_hangs": frozenset({"timeout"}),
    "malformed_tool_call": frozenset({"mad"}),
    "engine_5xx": frozenset({"failed"}),
    "engine_drop": frozenset({"failed"}),
    "engine_flaky": _HEALTHY,
    "judge_raises": frozenset({"failed"}),
    "nan_reward": frozenset({"failed"}),
}
_fault: contextvars.ContextVar[str | None] = contextvars.ContextVar("astuner_fault", default=None)

CALC_TOOL = {
    "type": "function",
    "function": {
        "name": "calculate",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}


class InjectedFault(RuntimeError):
    """Raised on purpose by a faulted workflow or judge."""


class AnswerWithTools(Workflow):
    """The healthy workflow: one model call offered a tool, its text is the final answer."""

    async def execute(self, workflow_task: WorkflowTask, model_tuner: Any) -> WorkflowOutput:
        messages = [
            {"role": "system", "content": "Answer with the number in \\boxed{}."},
            {"role": "user", "content": workflow_task.task.main_query},
        ]
        response = await model_tuner(messages, tools=[CALC_TOOL], max_tokens=24)
        text = "".join(b.get("text", "") for b in response.content if b.get("type") == "text")
        return WorkflowOutput(metadata={"final_answer": text})


def faulty(workflow_cls: type[Workflow], plan: dict[str, str]) -> type[Workflow]:
    """``workflow_cls`` with the faults of ``plan`` (episode id -> fault kind) injected."""

    class Faulty(workflow_cls):  # type: ignore[valid-type, misc]
        async def execute(self, workflow_task: WorkflowTask, model_tuner: Any) -> WorkflowOutput:
            kind = plan.get(workflow_task.episode_id)
            _fault.set(kind)  # this episode's task (and the engine calls it makes) see it
            if kind == "workflow_hangs":
                await asyncio.Event().wait()
            output = await super().execute(workflow_task, model_tuner)
            if kind == "workflow_raises":
                raise InjectedFault(f"injected: workflow of {workflow_task.episode_id} raised")
            if kind == "nan_reward":
                output.reward = float("nan")
            return output

    Faulty.__qualname__ = f"Faulty{workflow_cls.__qualname__}"
    return Faulty


class FaultyJudge(BaseJudge):
    """Wraps a judge; raises for episodes whose fault is ``judge_raises``.

    Looked up by episode id, not the context variable: the runner calls the judge outside the
    workflow's task, which does not see variables set inside it.
    """

    def __init__(self, inner: BaseJudge, plan: dict[str, str]):
        self.inner, self.plan = inner, plan

    async def compute_reward(self, workflow_task: WorkflowTask, workflow_output: WorkflowOutput) -> JudgeResult:
        if self.plan.get(workflow_task.episode_id) == "judge_raises":
            raise InjectedFault(f"injected: judge raised for {workflow_task.episode_id}")
        result = self.inner.compute_reward(workflow_task, workflow_output)
        return await result if asyncio.iscoroutine(result) else result


class FaultyEngine:
    """Routes a faulted episode's requests to the fault proxy, or answers a malformed tool call."""

    def __init__(self, engine: Engine, proxy_url: str, tokenizer: Any, retries: int = 2):
        self.engine, self.tokenizer = engine, tokenizer
        self.via_proxy = {
            kind: VllmEngine(f"{proxy_url}{kind}", "policy", request_timeout=60, retries=retries)
            for kind in ("engine_5xx", "engine_drop", "engine_flaky")
        }

    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        kind = _fault.get()
        if kind == "malformed_tool_call":
            text = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "2+"</tool_call>'
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            return Completion(token_ids=ids, logprobs=[-1.0] * len(ids), finish_reason="stop")
        if kind in self.via_proxy:
            return await self.via_proxy[kind].generate(prompt_ids, sampling)
        return await self.engine.generate(prompt_ids, sampling)

    async def aclose(self) -> None:
        for engine in self.via_proxy.values():
            await engine.aclose()


class FaultProxy:
    """A local HTTP proxy in front of the engine: ``/<kind>/v1/...`` misbehaves as ``kind`` says.

    ``engine_5xx`` answers 500; ``engine_drop`` closes the connection unanswered; ``engine_flaky``
    answers 503 to every other request and forwards the rest to the engine.
    """

    def __init__(self, engine_url: str):
        target = urlsplit(engine_url)
        proxy = self
        self.requests: Counter[str] = Counter()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                kind, _, rest = self.path.lstrip("/").partition("/")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    proxy.requests[kind] += 1
                    nth = proxy.requests[kind]
                if kind == "engine_drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if kind == "engine_5xx" or (kind == "engine_flaky" and nth % 2 == 1):
                    payload = b'{"error": "injected server error"}'
                    self.send_response(500 if kind == "engine_5xx" else 503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                conn.request("POST", "/" + rest, body, {"Content-Type": "application/json"})
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def outcome(episode: dict[str, Any]) -> str:
    return "mad" if episode["status"] == "ok" and episode["madness"] else episode["status"]


@dataclass
class CampaignReport:
    """Figures of one campaign (see the module docstring)."""

    steps_planned: int
    steps_completed: int = 0
    episodes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    healthy_ok: int = 0
    healthy_samples_lost: int = 0
    recorded: int = 0
    wall_seconds: float = 0.0
    step_seconds: list[float] = field(default_factory=list)

    @property
    def accounted(self) -> float:
        known = sum(self.outcomes[k] for k in ("ok", "failed", "timeout", "mad"))
        return known / self.episodes if self.episodes else 0.0

    def summary(self) -> str:
        o = self.outcomes
        return (
            f"{self.steps_completed}/{self.steps_planned} steps, {self.episodes} episodes "
            f"({sum(self.faults.values())} faulted): ok {o['ok']}, failed {o['failed']}, timed out {o['timeout']}, "
            f"mad {o['mad']} = {self.accounted:.0%} accounted; {len(self.unexpected)} unexpected outcomes; "
            f"healthy samples lost {self.healthy_samples_lost}; recorded {self.recorded}/{self.episodes}; "
            f"median step {statistics.median(self.step_seconds) if self.step_seconds else 0:.1f}s"
        )


async def run_campaign(
    engine_url: str,
    tokenizer: Any,
    tasks: list[Task],
    records_dir: Path,
    *,
    steps: int,
    tasks_per_step: int,
    num_repeat: int,
    fault_rate: float,
    episode_timeout: float = 8.0,
    max_env_worker: int = 32,
    judge: BaseJudge | None = None,
) -> CampaignReport:
    """Run ``steps`` steps of ``tasks_per_step`` x ``num_repeat`` episodes with faults injected."""
    from astuner.task_judge.math_answer_as_judge import MathAnswerAsJudge

    plan: dict[str, str] = {}
    report = CampaignReport(steps_planned=steps)
    settings = RolloutSettings(
        num_repeat=num_repeat,
        max_env_worker=max_env_worker,
        episode_timeout=episode_timeout,
        madness_checklist=("nonsense", "wrong_toolcall"),
        madness_reward=0.0,
        max_prompt_length=1024,
        max_response_length=512,
        max_samples_per_task=4,
        tuner=TunerSettings(temperature=0.7, max_model_len=2048, max_tokens_per_turn=24),
        hang_timeout=max(60.0, 4 * episode_timeout),
    )
    records_dir.mkdir(parents=True, exist_ok=True)
    base = VllmEngine(engine_url, "policy", request_timeout=120)
    t_start = time.monotonic()
    with FaultProxy(engine_url) as proxy:
        engine = FaultyEngine(base, proxy.url, tokenizer)
        runner = RolloutRunner(
            engine,
            ChatRenderer(tokenizer),
            faulty(AnswerWithTools, plan),
            FaultyJudge(judge or MathAnswerAsJudge(), plan),
            settings,
        )
        try:
            n_faulted = 0
            for step in range(1, steps + 1):
                batch = [tasks[(step * tasks_per_step + i) % len(tasks)] for i in range(tasks_per_step)]
                ids = [RolloutRunner.episode_id(t, r, step) for t in batch for r in range(num_repeat)]
                for i, eid in enumerate(ids):  # every 1/rate-th episode, kinds in turn
                    if fault_rate > 0 and int((i + 1) * fault_rate) > int(i * fault_rate):
                        plan[eid] = FAULT_KINDS[n_faulted % len(FAULT_KINDS)]
                        n_faulted += 1
                t0 = time.monotonic()
                episodes = await runner.run(batch, step=step, desc="fault campaign")
                ok = [e for e in episodes if e.status == "ok"]
                for e, adv in zip(
                    ok,
                    compute_advantages("grpo", [float(e.reward) for e in ok], [e.task_id for e in ok], True),
                    strict=True,
                ):
                    e.advantage = adv
                path = write_step(records_dir, step, episodes)
                report.step_seconds.append(time.monotonic() - t0)
                report.steps_completed += 1
                _account(report, read_step(path), plan, {e.episode_id: len(e.samples) for e in episodes})
        finally:
            await engine.aclose()
            await base.aclose()
    report.wall_seconds = time.monotonic() - t_start
    return report


def _account(report: CampaignReport, recorded: list[dict], plan: dict[str, str], samples: dict[str, int]) -> None:
    report.recorded += len(recorded)
    report.episodes += len(samples)
    for ep in recorded:
        kind = plan.get(ep["episode_id"])
        got = outcome(ep)
        report.outcomes[got] += 1
        if kind:
            report.faults[kind] += 1
        if got not in EXPECTED[kind]:
            expected = "/".join(sorted(EXPECTED[kind]))
            report.unexpected.append(f"{ep['episode_id']}: fault {kind}, expected {expected}, got {got}")
        if kind is None and got in _HEALTHY:
            report.healthy_ok += 1
            if not ep["samples"] or len(ep["samples"]) != samples[ep["episode_id"]]:
                report.healthy_samples_lost += 1
