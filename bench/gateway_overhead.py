"""Generated tokens/s and per-call latency of OpenAI SDK episodes through the gateway vs. the same
episodes through ModelTuner, side by side on one vLLM server.

    .venv/bin/python bench/gateway_overhead.py [--n 16] [--sequential 4] [--rounds 2] [--max-tokens 128]

Both sides hold the conversation of tutorial/example_openai_sdk: the system prompt, a one-digit
arithmetic question, a forced call of the sandboxed python tool, its output, then free turns.
Side "sdk" is the tutorial's own agent loop (``solve``) on ``openai.AsyncOpenAI`` over
``model_tuner.openai_endpoint()``; side "tuner" is the same loop written for ModelTuner with
AgentScope's formatter and blocks (tests/gateway/mirror.py, which tests/e2e/test_gateway_vllm.py
holds token-identical to the tutorial). Greedy and the same tasks, so both sides generate the same
tokens. After an uncounted warm-up of both sides (the engine's first requests, grammar compilation,
the gateway's start), each round runs both sides N episodes at once, then the first ``--sequential``
of them one at a time; the order of the sides alternates by round (tuner first, then sdk first) so
warm-up and machine noise do not favour one side; the spread over rounds is printed.

Added latency per call: the time the agent waits for a call, minus the time astuner's core spent
on it (``LLMCall.t_start..t_end``: rendering, the engine, parsing; the same code on both sides), is
that path's overhead, split into before the core starts and after it ends; the gateway's added
latency is the SDK path's overhead minus ModelTuner's. Subtracting the core keeps the engine's own
noise (about a second per call here) out of the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import openai

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from astuner import Workflow, WorkflowOutput  # noqa: E402
from astuner.config import load_config  # noqa: E402
from astuner.engine.vllm_client import VllmEngine  # noqa: E402
from astuner.model import resolve_model_path  # noqa: E402
from astuner.rollout.build import build_runner, load_tokenizer, vllm_server  # noqa: E402
from astuner.task_reader import build_task_reader  # noqa: E402
from tests.gateway.tutorials import SDK_DIR, sdk_tutorial  # noqa: E402

Spans = dict[str, list[tuple[float, float]]]  # episode id -> (start, end) wall clock of each of its calls


class _TimedCompletions:
    def __init__(self, client: openai.AsyncOpenAI, spans: list[tuple[float, float]]):
        self._client, self._spans = client, spans

    async def create(self, **kwargs):
        start = time.time()  # the clock of LLMCall.t_start / t_end
        response = await self._client.chat.completions.create(**kwargs)
        self._spans.append((start, time.time()))
        return response


def timed_client(client: openai.AsyncOpenAI, spans: list[tuple[float, float]]) -> SimpleNamespace:
    """The one path the tutorial's ``solve`` uses (``client.chat.completions.create``), timed."""
    return SimpleNamespace(chat=SimpleNamespace(completions=_TimedCompletions(client, spans)))


class _TimedTuner:
    """ModelTuner as the mirror's loop sees it: each call timed, everything else passed through."""

    def __init__(self, tuner, spans: list[tuple[float, float]]):
        self._tuner, self._spans = tuner, spans

    async def __call__(self, *args, **kwargs):
        start = time.time()
        response = await self._tuner(*args, **kwargs)
        self._spans.append((start, time.time()))
        return response

    def __getattr__(self, name):
        return getattr(self._tuner, name)


def sides(spans: Spans) -> dict[str, type[Workflow]]:
    """The two workflow classes, each writing its calls' (start, end) into ``spans``."""
    workflow, mirror = sdk_tutorial()
    tutorial = sys.modules[workflow.__module__]

    class SdkSide(Workflow):
        async def execute(self, workflow_task, model_tuner):
            base_url, api_key = model_tuner.openai_endpoint()
            mine = spans.setdefault(workflow_task.episode_id, [])
            question = workflow_task.task.main_query
            async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
                answer, _ = await tutorial.solve(timed_client(client, mine), model_tuner.model_name, question)
            return WorkflowOutput(reward=None, metadata={"final_answer": answer})

    class TunerSide(mirror):
        async def execute(self, workflow_task, model_tuner):
            mine = spans.setdefault(workflow_task.episode_id, [])
            return await super().execute(workflow_task, _TimedTuner(model_tuner, mine))

    return {"sdk": SdkSide, "tuner": TunerSide}


@dataclass
class Tally:
    """One side's numbers in one phase, over all rounds."""

    rates: list[float] = field(default_factory=list)  # generated tok/s of each round
    tokens: int = 0
    calls: int = 0
    failed: int = 0
    unpaired: int = 0  # episodes whose timed calls do not line up with their recorded calls
    before: list[float] = field(default_factory=list)  # per call: agent's call -> core starts, seconds
    after: list[float] = field(default_factory=list)  # per call: core ends -> agent has the reply
    core: list[float] = field(default_factory=list)

    def add(self, episodes, spans: Spans, seconds: float) -> int:
        tokens = sum(int(e.metrics.get("generated_tokens", 0)) for e in episodes)
        self.rates.append(tokens / seconds)
        self.tokens += tokens
        self.failed += sum(e.status != "ok" for e in episodes)
        for e in episodes:
            self.calls += len(e.calls)
            mine = spans.get(e.episode_id, [])
            if len(mine) != len(e.calls):
                self.unpaired += 1
                continue
            for (start, end), call in zip(mine, e.calls, strict=True):
                self.before.append(call.t_start - start)
                self.after.append(end - call.t_end)
                self.core.append(call.t_end - call.t_start)
        return tokens

    @property
    def overhead(self) -> list[float]:
        return [b + a for b, a in zip(self.before, self.after, strict=True)]


def pct(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else (xs or [0.0])[0]


def run_side(runner, workflow_cls, base_url: str, tasks, at_once: int) -> tuple[list, float]:
    async def go():
        engine = VllmEngine(base_url, "policy")
        bound = runner.bind(engine)
        bound.workflow_cls = workflow_cls
        bound.settings = replace(runner.settings, max_env_worker=at_once)
        start = time.perf_counter()
        try:
            return await bound.run(tasks, num_repeat=1, desc=workflow_cls.__name__), time.perf_counter() - start
        finally:
            await engine.aclose()

    return asyncio.run(go())


def report_throughput(t: dict[str, Tally], n: int, rounds: int) -> None:
    ratios = [s / d for s, d in zip(t["sdk"].rates, t["tuner"].rates, strict=True)]
    print(f"\nthroughput: {n} episodes at once per side, {rounds} rounds, greedy, one vLLM server")
    for side, label in (("tuner", "ModelTuner (AgentScope loop)"), ("sdk", "gateway + OpenAI SDK")):
        x = t[side]
        print(
            f"  {label:30s} {statistics.fmean(x.rates):7.1f} generated tok/s (rounds {min(x.rates):.1f}-"
            f"{max(x.rates):.1f}); {x.tokens} tokens, {x.calls} calls, {x.failed} failed episodes"
        )
    print(
        f"  ratio sdk/tuner: {statistics.fmean(ratios):.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f}; goal >= 0.95)"
    )


def report_latency(t: dict[str, Tally], title: str) -> None:
    s, d, ms = t["sdk"], t["tuner"], 1000
    print(
        f"\nper call, {title}: agent's wait minus astuner's core (core mean {statistics.fmean(s.core + d.core):.2f}s)"
    )
    for side, x in (("tuner", d), ("sdk", s)):
        o = x.overhead
        print(
            f"  {side:5s} mean {statistics.fmean(o) * ms:7.2f} ms, p50 {pct(o, 50) * ms:7.2f},"
            f" p95 {pct(o, 95) * ms:7.2f}"
            f" (before the core {statistics.fmean(x.before) * ms:.2f}, after {statistics.fmean(x.after) * ms:.2f};"
            f" {len(o)} calls, {x.unpaired} episodes unpaired)"
        )
    so, do = s.overhead, d.overhead
    print(
        f"  gateway added latency per call: mean {(statistics.fmean(so) - statistics.fmean(do)) * ms:.2f} ms,"
        f" p50 {(pct(so, 50) - pct(do, 50)) * ms:.2f} ms, p95 {(pct(so, 95) - pct(do, 95)) * ms:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16, help="episodes (tasks) per side and round, all at once")
    parser.add_argument("--sequential", type=int, default=4, help="of them, run one at a time too (latency alone)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs both sides, order alternating")
    parser.add_argument("--max-tokens", type=int, default=128, help="most tokens per call")
    args = parser.parse_args()

    overrides = [
        "astuner.rollout.temperature=0.0",
        f"astuner.rollout.max_env_worker={args.n}",
        f"astuner.rollout.max_num_seqs={args.n}",
        f"astuner.rollout.max_response_length_in_one_turn={args.max_tokens}",
        f"astuner.task_reader.arithmetic.num_train={args.n}",
    ]
    loaded = load_config(SDK_DIR / "openai_math_cpu.yaml", overrides, "debug", cwd=REPO)
    cfg = loaded.astuner
    tasks = build_task_reader(cfg.task_reader).get_training_tasks()[: args.n]
    model_dir = resolve_model_path(cfg.model.path or "")
    phases = {"at_once": (tasks, args.n), "one_at_a_time": (tasks[: args.sequential], 1)}
    tally = {phase: {"sdk": Tally(), "tuner": Tally()} for phase in phases}
    with vllm_server(cfg, model_dir, Path("/tmp") / "astuner-bench-gateway-vllm.log") as server:
        runner = build_runner(cfg, None, load_tokenizer(model_dir), loaded.yaml_path.parent, REPO)
        # warm-up, not counted: the engine's first requests and grammar compilation, the gateway's start
        for side in ("tuner", "sdk"):
            run_side(runner, sides({})[side], server.base_url, tasks[:2], 2)
        for r in range(args.rounds):
            order = ("tuner", "sdk") if r % 2 == 0 else ("sdk", "tuner")
            for phase, (chosen, at_once) in phases.items():
                line = []
                for side in order:
                    spans: Spans = {}
                    episodes, seconds = run_side(runner, sides(spans)[side], server.base_url, chosen, at_once)
                    tokens = tally[phase][side].add(episodes, spans, seconds)
                    line.append(f"{side} {tokens} tok in {seconds:.1f}s ({sum(len(e.calls) for e in episodes)} calls)")
                print(f"round {r + 1}, {phase}: " + " | ".join(line), flush=True)
    report_throughput(tally["at_once"], args.n, args.rounds)
    report_latency(tally["at_once"], f"{args.n} episodes at once")
    report_latency(tally["one_at_a_time"], "one episode at a time")


if __name__ == "__main__":
    main()
