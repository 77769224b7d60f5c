"""The debug backbone's policy update: dual-clip PPO on the HF model, in this process, with torch.

The algorithm is the one verl and Trinity compute (``astuner/algo/semantics.py``): one optimizer
step per ``data.train_batch_size x rollout.num_repeat`` samples, the loss a token mean over each
such mini-batch's trained tokens (zero-advantage samples included), the policy's logprobs taken at
the sampling temperature. Master weights stay in fp32; forward/backward run under bfloat16 autocast
on CPU (3-4x faster than fp32 on our 2-core machines, see notes). Samples are packed into
micro-batches under a padded-token budget; losses are summed over trained tokens and divided by the
mini-batch's total, so micro-batching does not change the token-mean loss. With
``debug.shared_prefix`` (default) samples that share a token prefix (a GRPO group's prompt) share a
row that holds it once (``shared_prefix.py``), attends through ``packed_attention.py`` on CPU (only
the query-key pairs the packing needs), and the LM head runs only at trained tokens (``head.py``);
otherwise each sample is its own row, padded to a multiple of 64 tokens. LoRA (peft) replaces full
fine-tuning when ``debug.lora_rank > 0``; its frozen base is then held in bf16 under bf16 autocast.

Where an update of the main job (6 x 8 episodes, ~345 shared prompt tokens of ~420) spent its time
and memory with padded rows, on the 2-core machine: 4096 padded tokens per micro-batch for 8 samples
of ~3,300 real ones (of which ~2,400 were copies of one prompt); attention 28% of the time, matmuls
30%, dtype casts and elementwise ops the rest; ~10 GiB peak RSS, of which activations of a 4096-token
micro-batch (~0.75 MB per token under autocast) ~3 GiB, logits and their fp32 copies ~1 GiB, and
memory glibc kept after freeing it ~2-4 GiB (fp32 weights, gradients and AdamW moments: 2 GiB).
"""

from __future__ import annotations

import hashlib
import math
import shutil
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from loguru import logger

from astuner.algo.policy_loss import policy_loss_sum
from astuner.backbone.debug import packed_attention
from astuner.backbone.debug.head import head_logprobs
from astuner.backbone.debug.memory import release_free_memory
from astuner.backbone.debug.shared_prefix import MicroBatch, Row, micro_batches
from astuner.backbone.debug.vector_math import resolve_vector_math_kernels
from astuner.config.schema import AstunerConfig
from astuner.context.types import Sample
from astuner.engine.weight_sync import WeightStream
from astuner.records.atomic import replaced_atomically

BUCKET = 64
# Statistics of policy_loss_sum that are means over the trained tokens forwarded (weighted so across passes).
PER_TOKEN_STATS = ("clipfrac", "clipfrac_lower", "approx_kl", "ratio_mean")


@dataclass
class TrainItem:
    """One sample and the advantage of its episode."""

    sample: Sample
    advantage: float


# Fused attention kernels whose outputs gradient checkpointing keeps (see _keep_attention_outputs).
_ATTENTION_OPS = tuple(
    getattr(torch.ops.aten, name).default
    for name in (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
    )
    if hasattr(torch.ops.aten, name)
) + (torch.ops.astuner.packed_attention.default,)


def _keep_attention_outputs() -> Any:
    """Selective checkpointing: backward replays each layer's forward except its attention kernel.

    The kernel's output (and log-sum-exp) are kept, 1.2 KB per token and layer in bf16; replaying
    attention was ~13% of an update of the main job on the 2-core machine, everything else the
    replay recomputes (projections, MLP, norms) is cheap per byte it would keep.
    """
    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

    def policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
        return CheckpointPolicy.MUST_SAVE if op in _ATTENTION_OPS else CheckpointPolicy.PREFER_RECOMPUTE

    return create_selective_checkpoint_contexts(policy)


def _bucket(n: int) -> int:
    return max(BUCKET, math.ceil(n / BUCKET) * BUCKET)


class PolicyTrainer:
    """Holds the trainable model and its optimizer.

    Args:
        model_dir: HF folder of the initial policy.
        cfg: the experiment config (``optim``, ``algorithm``, ``debug``).
    """

    def __init__(self, model_dir: Path, cfg: AstunerConfig):
        from transformers import AutoModelForCausalLM

        d = cfg.debug
        if d.torch_threads:
            torch.set_num_threads(d.torch_threads)
        resolve_vector_math_kernels()  # before any parallel call can race (pytorch/pytorch#188792)
        torch.manual_seed(cfg.trainer_common.seed)
        self.cfg = cfg
        self.temperature = cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
        # On a machine with a GPU the update runs there; everything else (the loop, the workflow) stays put.
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        # packed rows attend through packed_attention.py on CPU (its kernels are the CPU ones), else SDPA + mask
        self.packed_attention = d.shared_prefix and self.device.type == "cpu" and packed_attention.available()
        self.lora = d.lora_rank > 0
        # LoRA's frozen base needs no fp32 master copy: under bf16 autocast it is held in bf16, as it is used
        base_dtype = torch.bfloat16 if self.lora and d.bf16_autocast else torch.float32
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=base_dtype)
        if self.packed_attention:
            packed_attention.use_packed_attention(model)
        if d.gradient_checkpointing:
            kwargs = {"use_reentrant": False, "context_fn": _keep_attention_outputs}
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            model.config.use_cache = False
        if d.shared_prefix and model.get_output_embeddings().bias is not None:
            raise ValueError(
                "astuner.debug.shared_prefix = true needs a bias-free LM head and this model's has a bias; "
                "set astuner.debug.shared_prefix=false"
            )
        if self.lora:
            from peft import LoraConfig, get_peft_model
            from peft.tuners.tuners_utils import BaseTunerLayer

            model = get_peft_model(
                model,
                LoraConfig(
                    r=d.lora_rank,
                    lora_alpha=d.lora_alpha,
                    lora_dropout=0.0,
                    target_modules="all-linear",
                    task_type="CAUSAL_LM",
                ),
            )
            if d.bf16_autocast:
                # peft casts each LoRA layer's input to its fp32 weights (a copy of the activations), which
                # autocast casts back to bf16 for the matmul: two copies per layer and pass. Autocast alone
                # runs the same matmul in bf16. With the casts and an fp32 base, a replayed main-job step
                # took 96.6 s (full fine-tuning 78.8 s); without them and with the bf16 base, 50-66 s.
                for module in model.modules():
                    if isinstance(module, BaseTunerLayer):
                        module.cast_input_dtype_enabled = False
        self.model = model.to(self.device)
        self.model.train()
        self.pad_id = int(model.config.pad_token_id if model.config.pad_token_id is not None else 0)
        params = [p for p in model.parameters() if p.requires_grad]
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, foreach=False)
        self.offloaded: Path | None = None  # where the optimizer's state is while it is not in memory
        self.reference = None
        if cfg.algorithm.kl_coef > 0:
            self.reference = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
            self.reference = self.reference.to(self.device).eval()
            if self.packed_attention:
                packed_attention.use_packed_attention(self.reference)
            for p in self.reference.parameters():
                p.requires_grad_(False)
        n_train = sum(p.numel() for p in params)
        logger.info(
            f"trainer: {n_train / 1e6:.1f}M trainable parameters ({'LoRA' if self.lora else 'full'}), "
            f"{torch.get_num_threads()} torch threads, bf16 autocast {'on' if d.bf16_autocast else 'off'}"
        )

    # ---- forward -------------------------------------------------------------------------
    def _batch(self, items: Sequence[TrainItem]) -> dict[str, torch.Tensor]:
        length = _bucket(max(len(i.sample.prompt_ids) + len(i.sample.response_ids) for i in items))
        width = max(len(i.sample.response_ids) for i in items)
        n = len(items)
        ids = torch.full((n, length), self.pad_id, dtype=torch.long)
        attn = torch.zeros((n, length), dtype=torch.long)
        targets = torch.zeros((n, width), dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)  # index of the logit predicting each target
        old = torch.zeros((n, width))
        mask = torch.zeros((n, width))
        for row, item in enumerate(items):
            s = item.sample
            seq = s.prompt_ids + s.response_ids
            ids[row, : len(seq)] = torch.tensor(seq)
            attn[row, : len(seq)] = 1
            r = len(s.response_ids)
            targets[row, :r] = torch.tensor(s.response_ids)
            positions[row, :r] = torch.arange(len(s.prompt_ids) - 1, len(seq) - 1)
            old[row, :r] = torch.tensor(s.logprobs)
            mask[row, :r] = torch.tensor(s.loss_mask, dtype=torch.float32)
        adv = torch.tensor([i.advantage for i in items], dtype=torch.float32)
        return {
            "ids": ids,
            "attn": attn,
            "targets": targets,
            "positions": positions,
            "old": old,
            "mask": mask,
            "adv": adv,
        }

    def _logprobs(self, model: Any, mb: MicroBatch, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """[rows, response width] logprobs of ``mb``'s response tokens (where the loss mask is 0: unused)."""
        return self._prefix_logprobs(model, mb, b) if self.cfg.debug.shared_prefix else self._token_logprobs(model, b)

    def _token_logprobs(self, model: Any, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logprobs of the response tokens under the sampling distribution (logits / rollout.temperature,
        as verl and Trinity train it; the engine reports the same processed logprobs). The LM head (576 x
        49k for SmolLM2, a fifth of the compute) runs only at the positions that predict response tokens."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.debug.bf16_autocast):
            hidden = base.model(input_ids=b["ids"], attention_mask=b["attn"]).last_hidden_state
            picked = torch.gather(hidden, 1, b["positions"].unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
            logits = base.lm_head(picked)
        logp = torch.log_softmax(logits.float() / self.temperature, dim=-1)
        return torch.gather(logp, 2, b["targets"].unsqueeze(-1)).squeeze(-1)

    def _prefix_logprobs(self, model: Any, mb: MicroBatch, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """``_token_logprobs`` of ``mb``'s packed rows, each shared prefix computed once (``shared_prefix.py``).

        The LM head runs only at trained tokens (loss mask 1), a chunk at a time (``head.py``).
        """
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        bf16 = self.cfg.debug.bf16_autocast
        # under gradient checkpointing autocast's cache of bf16 weight copies would keep all of them
        # alive from the forward to the end of backward; without it each layer casts when it runs
        cache = not self.cfg.debug.gradient_checkpointing
        if self.packed_attention:
            inputs = mb.packed_inputs(self.pad_id, self.device)
        else:
            inputs = mb.inputs(self.pad_id, self.device, torch.bfloat16 if bf16 else base.dtype)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=cache):
            hidden = base.model(**inputs).last_hidden_state
        trained = b["mask"] > 0
        picked = hidden.flatten(0, 1).index_select(0, mb.flat_index(b["positions"])[trained])
        logp = head_logprobs(picked, base.lm_head, b["targets"][trained], self.temperature, bf16)
        return torch.zeros_like(b["mask"]).masked_scatter(trained, logp)

    def micro_batches(self, items: Sequence[TrainItem]) -> list[MicroBatch]:
        """The forward passes over ``items``, each within ``debug.micro_batch_tokens`` padded tokens.

        ``debug.shared_prefix``: packed rows, each shared prefix held once (``shared_prefix.py``).
        Otherwise one row per sample, longest first, each padded to its micro-batch's longest bucket.
        """
        budget = self.cfg.debug.micro_batch_tokens
        if self.cfg.debug.shared_prefix:
            return micro_batches(items, budget, self.packed_attention)
        ordered = sorted(items, key=lambda i: -(len(i.sample.prompt_ids) + len(i.sample.response_ids)))
        batches: list[list[TrainItem]] = []
        width = 0  # padded length of the current micro-batch: its first (longest) sample's bucket
        for item in ordered:
            if batches and width * (len(batches[-1]) + 1) <= budget:
                batches[-1].append(item)
            else:
                batches.append([item])
                width = _bucket(len(item.sample.prompt_ids) + len(item.sample.response_ids))
        return [
            MicroBatch(tuple(Row((i,), len(i.sample.prompt_ids) + len(i.sample.response_ids)) for i in b))
            for b in batches
        ]

    # ---- update --------------------------------------------------------------------------
    def mini_batches(self, items: Sequence[TrainItem]) -> list[list[TrainItem]]:
        """Consecutive chunks of ``data.train_batch_size x rollout.num_repeat`` samples, one optimizer step each.

        Why that size: verl's mini-batch is ``ppo_mini_batch_size x rollout.n`` samples and Trinity's
        training batch ``batch_size x repeat_times`` experiences (``astuner/algo/semantics.py``); a batch
        with more samples (multi-timeline episodes) takes more steps on every backbone.
        """
        size = self.cfg.data.train_batch_size * self.cfg.rollout.num_repeat
        return [list(items[i : i + size]) for i in range(0, len(items), size)]

    def update(self, items: Sequence[TrainItem], progress: Any = None) -> dict[str, float]:
        """Optimizer steps over ``items`` (one per mini-batch); returns loss and diagnostics.

        Every item counts in its mini-batch's token mean, also one with advantage 0 (as in verl and
        Trinity, which keep such samples in the batch); its forward pass is skipped when it cannot
        change the loss (no KL term), and the step is taken even when no item has a gradient (Adam's
        moments still move, as upstream).
        """
        start = time.monotonic()
        if self.offloaded is not None:  # the moments offload_optimizer wrote after the last update
            self.load_optimizer(self.offloaded)
        chunks = [c for c in self.mini_batches(items) if sum(sum(i.sample.loss_mask) for i in c) > 0]
        if not chunks:
            return {"train_tokens": 0}
        forwards = [[i for i in c if i.advantage != 0.0 or self.reference is not None] for c in chunks]
        if progress is not None:
            progress.reset(total=sum(len(self.micro_batches(f)) for f in forwards))
        steps = [self._step(chunk, fwd, progress) for chunk, fwd in zip(chunks, forwards, strict=True)]
        out = {k: statistics.fmean(s[k] for s in steps) for k in ("loss", "kl_ref", "grad_norm")}
        # Means over forwarded tokens, like each step's: a mini-batch whose samples all had advantage 0 forwarded
        # none and has no ratio to count (it would pull ``ratio_mean`` towards 0); with none forwarded at all,
        # there is no ratio to report.
        forwarded = sum(s["forward_tokens"] for s in steps)
        if forwarded:
            out.update({k: sum(s[k] * s["forward_tokens"] for s in steps) / forwarded for k in PER_TOKEN_STATS})
        return {
            **out,
            "lr": self.cfg.optim.lr,
            "train_tokens": sum(s["train_tokens"] for s in steps),
            "forward_tokens": forwarded,
            "micro_batches": sum(s["micro_batches"] for s in steps),
            "optimizer_steps": len(steps),
            "train_seconds": time.monotonic() - start,
        }

    def _step(self, chunk: list[TrainItem], forward: list[TrainItem], progress: Any) -> dict[str, float]:
        """One optimizer step: the token-mean loss over ``chunk``'s trained tokens, computed on ``forward``."""
        total = sum(sum(i.sample.loss_mask) for i in chunk)
        self.optimizer.zero_grad(set_to_none=True)
        batches = self.micro_batches(forward)
        stats = [self._micro_step(mb, total, progress) for mb in batches]
        params = [p for p in self.model.parameters() if p.requires_grad]
        for p in params:  # a step with no gradient still steps (zero gradients), as verl's and Trinity's do
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        clip = self.cfg.optim.grad_clip
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf")))
        if math.isfinite(grad_norm):
            self.optimizer.step()
        else:
            logger.warning(f"gradient norm is {grad_norm}; skipping this optimizer step")
        self.optimizer.zero_grad(set_to_none=True)
        self.release_memory()
        weight = sum(s["weight"] for s in stats)
        per_token = {k: sum(s[k] * s["weight"] for s in stats) / weight if weight else 0.0 for k in PER_TOKEN_STATS}
        return {
            "loss": sum(s["loss"] for s in stats) / total,
            **per_token,
            "kl_ref": sum(s["kl_ref"] for s in stats) / total,
            "grad_norm": grad_norm,
            "train_tokens": total,
            "forward_tokens": weight,
            "micro_batches": len(batches),
        }

    def _micro_step(self, mb: MicroBatch, total: int, progress: Any) -> dict[str, float]:
        """Forward and backward of one micro-batch (its loss divided by the mini-batch's ``total`` tokens)."""
        b = {k: v.to(self.device) for k, v in self._batch(mb.items).items()}
        self.release_memory()
        logp = self._logprobs(self.model, mb, b)
        ref = None
        if self.reference is not None:
            with torch.no_grad():
                ref = self._logprobs(self.reference, mb, b)
        loss, stats = policy_loss_sum(logp, b["old"], b["adv"], b["mask"], self.cfg.algorithm, ref)
        self.release_memory()  # the forward's scratch, before backward adds gradients and recomputes layers
        (loss / total).backward()
        self.release_memory()
        if progress is not None:
            progress.update(1)
        return {**stats, "loss": float(loss.detach()), "weight": float(b["mask"].sum())}

    def release_memory(self) -> None:
        """Return freed memory to the OS (``debug.release_memory``), e.g. before a rollout.

        Without it the trainer kept what the update and the weight sync had freed through the next
        rollout, when the engine's memory peaks. On the main job with LoRA the trainer went through the
        rollouts after steps 1 and 2 at 2.17 and 2.37 GiB; with this and the streamed export
        (``engine_weights``), at 1.17 and 1.44 GiB (0.61 GiB before the first update).
        """
        if self.cfg.debug.release_memory:
            release_free_memory()

    # ---- the optimizer's state between updates -----------------------------------------------
    def offload_optimizer(self, path: Path) -> float:
        """Write the optimizer's state to ``path`` and drop it from memory until the next update; returns seconds.

        Why: AdamW's two fp32 moments take twice the trainable weights (1.0 GiB with full fine-tuning of the
        135M model), and nothing reads them between updates, while the rollout runs and the engine's memory
        peaks. verl's ``optimizer_offload`` moves them to host memory for the same reason; on a CPU machine
        the place left is a file. ``update()`` reads them back first, bit for bit.
        """
        start = time.monotonic()
        with replaced_atomically(path) as tmp:
            torch.save(self.optimizer.state_dict(), tmp)
        self.optimizer.state.clear()
        self.offloaded = path
        self.release_memory()
        return time.monotonic() - start

    def load_optimizer(self, path: Path) -> None:
        """The optimizer's state from a file ``save_optimizer`` (or ``offload_optimizer``) wrote."""
        self.optimizer.load_state_dict(torch.load(path, weights_only=True))
        self.offloaded = None

    def save_optimizer(self, path: Path) -> None:
        """Write the optimizer's state to ``path`` (a checkpoint's); offloaded, it is copied file to file."""
        if self.offloaded is not None:
            shutil.copyfile(self.offloaded, path)
        else:
            torch.save(self.optimizer.state_dict(), path)

    @torch.no_grad()
    def sequence_logprobs(self, ids: Sequence[int]) -> list[float]:
        """Logprob of each token of ``ids`` given the ones before: sync checks. fp32 without autocast, but
        with LoRA under bf16 autocast (its frozen base is bf16, and its layers take autocast's casts)."""
        self.model.eval()
        bf16 = self.lora and self.cfg.debug.bf16_autocast
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = self.model(input_ids=torch.tensor([list(ids)], device=self.device)).logits.float().cpu()
        self.model.train()
        logp = torch.log_softmax(logits[0, :-1], dim=-1)
        return logp.gather(1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1).tolist()

    # ---- weights -------------------------------------------------------------------------
    def engine_weights(self) -> WeightStream:
        """Full-model weights under the base model's names (LoRA merged), for the inference engine.

        A stream: each merged weight is made when the export writes it, so the trainer never holds a
        second copy of the model (``WeightStream`` says what that cost).

        Why not peft's ``merge_adapter()``/``unmerge_adapter()``: they add the LoRA delta to the frozen
        base weights in place and subtract it again, and ``W + d - d`` is not ``W`` in floating point.
        The base then drifts with every weight sync, so the policy depended on how many syncs a process
        had done, and a run resumed from a checkpoint (a fresh base) sampled differently from one that
        never stopped. Here the merge is out of place (``base + delta``); the base is never written.
        """
        state = self.model.state_dict()
        if not self.lora:
            return WeightStream.of(state)
        from peft.tuners.lora import LoraLayer

        layers = {f"{n}.base_layer.weight": m for n, m in self.model.named_modules() if isinstance(m, LoraLayer)}
        names = {k: k.replace("base_model.model.", "", 1).replace(".base_layer", "") for k in state if "lora_" not in k}

        def merged() -> Iterator[tuple[str, torch.Tensor]]:
            with torch.no_grad():
                for k, name in names.items():
                    v = state[k].detach()
                    layer = layers.get(k)
                    if layer is not None:
                        delta = sum(layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.lora_A)
                        v = (v + delta).to(v.dtype)
                    yield name, v

        return WeightStream({name: tuple(state[k].shape) for k, name in names.items()}, merged)

    def engine_state_dict(self) -> dict[str, torch.Tensor]:
        """``engine_weights()`` made whole (copies, unaffected by later updates): for tests and tools."""
        return {k: v.clone() for k, v in self.engine_weights().tensors()}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        if self.lora:
            from peft import get_peft_model_state_dict

            return get_peft_model_state_dict(self.model)
        return self.model.state_dict()

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.lora:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.model, state)
        else:
            self.model.load_state_dict(state)

    def weights_hash(self) -> str:
        """sha256 over the trainable weights (names and bytes), to compare runs exactly."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.trainable_state().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
