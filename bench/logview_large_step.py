"""How fast logview answers on a large step: 2000 episodes, each with a 2-call sample, one 10k-token.

    .venv/bin/python bench/logview_large_step.py [--episodes 2000]

Writes the step with astuner's recorder (real SmolLM2 token ids), then times, through the real
HTTP server: the first step page (indexes the file), a second step page (cached index), a sorted
and filtered page, an episode page, and the 10k-token sample page; and compares the first page with
simply parsing the whole file (the floor for any reader that must see every episode once).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from astuner.context.types import LLMCall, Sample  # noqa: E402
from astuner.logview.server import make_server  # noqa: E402
from astuner.records import open_experiment  # noqa: E402
from astuner.records.trajectories import write_step  # noqa: E402
from astuner.rollout.runner import Episode  # noqa: E402


def episode(tok, i: int, big: bool) -> Episode:
    prompt = tok(f"<|im_start|>user\nWhat is {i} + {i}?<|im_end|>\n<|im_start|>assistant\n")["input_ids"] * 8
    r0 = tok(f"Let me compute {i} + {i} with the tool.")["input_ids"] * (900 if big else 4)
    ctx = tok("<|im_start|>user\n<tool_response>42</tool_response><|im_end|>")["input_ids"]
    r1 = tok(f"The answer is \\boxed{{{2 * i}}}.")["input_ids"]
    response = r0 + ctx + r1
    mask = [1] * len(r0) + [0] * len(ctx) + [1] * len(r1)
    calls = [
        LLMCall(0, prompt, r0, [-0.2] * len(r0), "stop", [{"role": "user", "content": f"{i}+{i}?"}]),
        LLMCall(1, prompt + r0 + ctx, r1, [-0.1] * len(r1), "stop", [], spliced=1),
    ]
    sample = Sample(prompt, response, mask, [-0.2] * len(r0) + [0.0] * len(ctx) + [-0.1] * len(r1), [0, 1])
    return Episode(
        f"s1-t{i // 8}-r{i % 8}",
        f"t{i // 8}",
        i % 8,
        "ok",
        reward=float(i % 2),
        advantage=0.5,
        calls=calls,
        samples=[sample],
        metrics={"seconds": 1.0},
    )


def timed(url: str, n: int = 3) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as r:
            size = len(r.read())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--episodes", type=int, default=2000)
    args = p.parse_args()
    from transformers import AutoTokenizer

    from astuner.model.embedded import materialize

    tok = AutoTokenizer.from_pretrained(str(materialize("smollm2-135m")))
    with tempfile.TemporaryDirectory() as d:
        exp = open_experiment(Path(d), "big", resume=False)
        exp.write_config("astuner: {}\n")
        exp.save_tokenizer(tok)
        path = write_step(exp.trajectories_dir, 1, [episode(tok, i, i == 7) for i in range(args.episodes)])
        exp.close()
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        with path.open() as f:
            for line in f:
                json.loads(line)
        parse_s = time.perf_counter() - t0
        server = make_server(exp.root)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = server.url + "api/"
        first, _ = timed(base + "step?kind=train&step=1", n=1)
        cached, size = timed(base + "step?kind=train&step=1")
        sorted_, _ = timed(base + "step?kind=train&step=1&sort=reward&order=desc&flag=success&q=t1")
        ep, _ = timed(base + "episode?kind=train&step=1&id=s1-t0-r7")
        big, big_size = timed(base + "sample?kind=train&step=1&id=s1-t0-r7&index=0")
        server.shutdown()
    print(f"step file: {args.episodes} episodes, {size_mb:.0f} MB; json parse of the whole file {parse_s:.2f}s")
    print(f"first step page (builds the index): {first:.2f}s = x{first / parse_s:.2f} of the bare parse")
    print(f"next step page (cached index, 100 rows, {size / 1e3:.0f} kB): {cached * 1e3:.0f} ms")
    print(f"sorted + filtered page: {sorted_ * 1e3:.0f} ms; episode page: {ep * 1e3:.0f} ms")
    print(f"10k-token sample page ({big_size / 1e3:.0f} kB with token text): {big * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
