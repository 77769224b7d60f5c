"""Did each weight sync reach the engine? The engine's logprobs of its own samples against the saved weights.

    python3 scripts/gpu/sync_check.py RECORDS --prefix trinity --base MODEL_DIR [--temperature 0.7] [--samples 64]

After training step K the trainer's weights go to the engine, and the next rollout step (K+1) samples
with them. Every recorded sample carries the engine's logprob of each sampled token (at the sampling
temperature). For every Hugging Face checkpoint the run saved (``global_step_K/.../config.json`` beside
safetensors) whose next step was recorded, this takes step K+1's samples and computes their logprobs
under every saved set of weights (each checkpoint, and the initial weights ``--base``; fp32, on the GPU
when there is one), printing the mean |engine - weights| over the sampled tokens. If the sync worked,
step K's weights fit best (bf16 rounding); a sync that lagged or never happened fits an earlier
checkpoint or the initial weights instead. The rows of one block share the same tokens.

Why from the records: it needs no hook inside the backbone (Trinity's trainer reports only the signed
``ppo_kl``), so it works on any backbone that saves Hugging Face weights, on the samples it trained on.
Exit code 1 when a checkpoint's after-sync difference is not the smallest of its rows.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

STEP_DIR = re.compile(r"global_step_(\d+)")


def step_files(records: Path, prefix: str, step: int) -> list[Path]:
    """The training trajectory files of ``step``: ``<prefix>_step_N.<pid>.jsonl`` (verl, Trinity: one per
    worker process) or the debug backbone's ``step_N.jsonl``."""
    name = f"{prefix}_step_{step:06d}" if prefix else f"step_{step:06d}"
    return sorted((records / "trajectories").glob(f"{name}.*jsonl"))


def load_samples(records: Path, prefix: str, step: int, limit: int) -> list[dict]:
    """Up to ``limit`` trained samples (at least one sampled token) of finished episodes, in file order."""
    out: list[dict] = []
    for path in step_files(records, prefix, step):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            episode = json.loads(line)
            if episode.get("status") != "ok":
                continue
            out += [s for s in episode.get("samples") or [] if sum(s["loss_mask"]) > 0]
            if len(out) >= limit:
                return out[:limit]
    return out


def checkpoints(records: Path) -> dict[int, Path]:
    """Training step -> the folder holding that step's Hugging Face weights."""
    found: dict[int, Path] = {}
    for config in sorted((records / "checkpoints").rglob("config.json")):
        folder = config.parent
        match = STEP_DIR.search(str(folder))
        if match and any(folder.glob("*.safetensors")):
            found.setdefault(int(match.group(1)), folder)
    return dict(sorted(found.items()))


@torch.no_grad()
def differences(model, samples: list[dict], temperature: float, device: torch.device) -> tuple[int, float, float]:
    """(tokens, mean |engine - model|, mean engine - model) over the samples' sampled tokens."""
    count, abs_sum, signed_sum = 0, 0.0, 0.0
    for s in samples:
        ids = s["prompt_ids"] + s["response_ids"]
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0].float()
        start = len(s["prompt_ids"])
        logp = torch.log_softmax(logits[start - 1 : len(ids) - 1] / temperature, dim=-1)
        mine = logp.gather(1, torch.tensor(s["response_ids"], device=device).unsqueeze(-1)).squeeze(-1)
        mask = torch.tensor(s["loss_mask"], device=device, dtype=torch.bool)
        diff = torch.tensor(s["logprobs"], device=device)[mask] - mine[mask]
        count += int(mask.sum())
        abs_sum += float(diff.abs().sum())
        signed_sum += float(diff.sum())
    return count, abs_sum / max(count, 1), signed_sum / max(count, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=Path, help="the run's records folder (launcher_record/<experiment>)")
    parser.add_argument("--prefix", default="", help="trajectory file prefix: trinity, verl, or '' (debug)")
    parser.add_argument("--base", type=Path, required=True, help="the initial weights (Hugging Face folder)")
    parser.add_argument("--temperature", type=float, required=True, help="the rollout's sampling temperature")
    parser.add_argument("--samples", type=int, default=64, help="samples per step (default 64)")
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    found = checkpoints(args.records)
    if not found:
        print(f"sync_check: no Hugging Face checkpoint under {args.records / 'checkpoints'}")
        return 1
    load = lambda p: AutoModelForCausalLM.from_pretrained(str(p), dtype=torch.float32).to(device).eval()  # noqa: E731
    weights = {f"step {k}": folder for k, folder in found.items()} | {"initial": args.base}
    print(f"{'samples':<10}{'weights':<20}{'tokens':>8}{'mean |diff|':>13}{'mean diff':>11}")
    ok, checked = True, 0
    for step in found:
        samples = load_samples(args.records, args.prefix, step + 1, args.samples)
        if not samples:
            continue
        rows = {}
        for label, folder in weights.items():
            model = load(folder)
            tokens, mean_abs, mean = differences(model, samples, args.temperature, device)
            del model
            rows[label] = mean_abs
            mark = f"  <- synced after step {step}" if label == f"step {step}" else ""
            print(f"{f'step {step + 1}':<10}{label:<20}{tokens:>8}{mean_abs:>13.4f}{mean:>11.4f}{mark}")
        checked += 1
        ok = ok and rows[f"step {step}"] <= min(rows.values())
    if not checked:
        print("sync_check: no checkpoint has a recorded next step to compare with")
        return 1
    print("sync_check: " + ("each sync's samples match the synced weights best" if ok else "MISMATCH: see above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
