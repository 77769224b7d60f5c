"""Generated tokens/s of astuner rollouts vs. the same prompts sent straight to the same vLLM server.

    .venv/bin/python bench/rollout_overhead.py [--tasks ../shared/data/gsm8k/test.jsonl] [--n 32]

Side A runs the tutorial's MathAgentWorkflow (AgentScope ReActAgent + ModelTuner: rendering,
recording, parsing, madness checks, judging, merging) on N tasks, greedy, one episode per task.
Side B replays exactly the prompts side A sent (as token ids, same max_tokens, greedy) with plain
HTTP requests, all at once, to the same server. Both sides generate the same tokens, so the ratio of
their tokens/s is astuner's overhead. Run order is A, B, A, B to even out warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from astuner.config import load_config  # noqa: E402
from astuner.engine.vllm_client import VllmEngine  # noqa: E402
from astuner.model import resolve_model_path  # noqa: E402
from astuner.rollout.build import build_runner, load_tokenizer, vllm_server  # noqa: E402
from astuner.rollout.runner import Episode  # noqa: E402
from astuner.task_reader import RowFields  # noqa: E402
from astuner.task_reader.dataset_file import DatasetFileReader  # noqa: E402


async def side_a(runner, engine, tasks) -> tuple[list[Episode], float]:
    start = time.perf_counter()
    try:
        episodes = await runner.run(tasks, num_repeat=1, desc="astuner")
    finally:
        await engine.aclose()
    return episodes, time.perf_counter() - start


async def side_b(base_url: str, requests: list[tuple[list[int], int]]) -> tuple[int, float]:
    async with httpx.AsyncClient(timeout=900) as client:

        async def one(prompt, max_tokens):
            body = {
                "model": "policy",
                "prompt": prompt,
                "max_tokens": max_tokens,
                "temperature": 0.0,
                "logprobs": 0,
                "return_token_ids": True,
                "skip_special_tokens": False,
            }
            r = await client.post(f"{base_url}/v1/completions", json=body)
            r.raise_for_status()
            return len(r.json()["choices"][0]["token_ids"])

        start = time.perf_counter()
        counts = await asyncio.gather(*(one(p, m) for p, m in requests))
        return sum(counts), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=str(REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"))
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    overrides = [
        "astuner.model.path=builtin:smollm2-135m",
        "astuner.rollout.max_model_len=4096",
        "astuner.rollout.max_response_length_in_one_turn=256",
        "astuner.rollout.temperature=0.0",
        f"astuner.rollout.max_env_worker={args.n}",
        f"astuner.rollout.max_num_seqs={args.n}",
    ]
    loaded = load_config(REPO / "tutorial/example_math_agent/math_agent.yaml", overrides, cwd=REPO)
    cfg = loaded.astuner
    tasks = DatasetFileReader(args.tasks, None, RowFields()).get_training_tasks()[: args.n]
    model_dir = resolve_model_path(cfg.model.path or "")
    tokenizer = load_tokenizer(model_dir)
    log = Path("/tmp") / "astuner-bench-vllm.log"
    results: dict[str, list[float]] = {"astuner": [], "direct": []}
    with vllm_server(cfg, model_dir, log) as server:
        for _ in range(args.rounds):
            engine = VllmEngine(server.base_url, "policy")
            runner = build_runner(cfg, engine, tokenizer, loaded.yaml_path.parent, REPO)
            episodes, a_seconds = asyncio.run(side_a(runner, engine, tasks))
            calls = [c for e in episodes for c in e.calls if c.finish_reason != "context_overflow"]
            a_tokens = sum(len(c.response_ids) for c in calls)
            requests = [(c.prompt_ids, 256) for c in calls]
            b_tokens, b_seconds = asyncio.run(side_b(server.base_url, requests))
            results["astuner"].append(a_tokens / a_seconds)
            results["direct"].append(b_tokens / b_seconds)
            print(
                f"round: astuner {a_tokens} tok in {a_seconds:.1f}s ({len(calls)} calls, "
                f"{sum(e.status != 'ok' for e in episodes)} failed) | direct {b_tokens} tok in {b_seconds:.1f}s"
            )
    a, b = statistics.fmean(results["astuner"]), statistics.fmean(results["direct"])
    print(f"\nastuner rollouts: {a:8.1f} generated tok/s  (ReActAgent + ModelTuner, {args.n} episodes at once)")
    print(f"direct to vLLM:   {b:8.1f} generated tok/s  (same prompts as token ids, all at once)")
    print(f"ratio astuner/direct: {a / b:.3f}")


if __name__ == "__main__":
    main()
