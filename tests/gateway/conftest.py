"""Fixtures of the gateway tests: a tuner on a scripted engine and its OpenAI endpoint."""

from __future__ import annotations

import asyncio

from astuner.tuner.chat_render import ChatRenderer
from astuner.tuner.model_tuner import ModelTuner, TunerSettings
from tests.conftest import ScriptedEngine

CALL = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(2+3)"}}\n</tool_call>'
BASE = {"temperature": 0.7, "max_model_len": 2048, "max_tokens_per_turn": 256}


def make_tuner(tokenizer, replies, engine=None, episode_id="ep0", **settings) -> tuple[ModelTuner, ScriptedEngine]:
    engine = engine or ScriptedEngine(tokenizer, replies)
    tuner = ModelTuner(engine, ChatRenderer(tokenizer), TunerSettings(**{**BASE, **settings}), episode_id=episode_id)
    return tuner, engine


class SlowEngine(ScriptedEngine):
    """A scripted engine that holds every request ``delay`` seconds and counts how many it held at once."""

    def __init__(self, tokenizer, replies, delay: float):
        super().__init__(tokenizer, replies)
        self.delay, self.active, self.peak = delay, 0, 0

    async def generate(self, prompt_ids, sampling):
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay)
            return await super().generate(prompt_ids, sampling)
        finally:
            self.active -= 1
