"""The weight export's safetensors writer (what safetensors reads back, one tensor held at a time) and the
reload's prefix-cache reset (a refusal injected with httpx's mock transport)."""

from __future__ import annotations

import gc
import weakref

import httpx
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from astuner.engine.protocol import EngineError
from astuner.engine.weight_sync import VllmWeightSync, WeightStream, write_safetensors

SHAPES = {"embed.weight": (7, 6), "layers.0.norm.weight": (6,), "layers.0.proj.weight": (5, 6), "head.bias": (3,)}


def tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(s, generator=g) for k, s in SHAPES.items()}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_safetensors_reads_back_each_tensor_cast_to_the_engine_dtype(tmp_path, dtype):
    state = tensors()
    state["layers.0.proj.weight"] = state["layers.0.proj.weight"].t().contiguous().t()  # not contiguous
    write_safetensors(tmp_path / "m.safetensors", WeightStream.of(state), dtype)
    back = load_file(tmp_path / "m.safetensors")
    assert set(back) == set(SHAPES)
    for k, v in state.items():
        assert back[k].dtype == dtype and torch.equal(back[k], v.to(dtype)), k
    with safe_open(tmp_path / "m.safetensors", framework="pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_the_writer_holds_one_made_tensor_at_a_time(tmp_path):
    """Each tensor the stream makes is gone before the next one is made (the point of streaming)."""
    alive: list[weakref.ref] = []
    held_at_make: list[int] = []

    def make():
        for k, v in tensors().items():
            gc.collect()
            held_at_make.append(sum(r() is not None for r in alive))
            t = v * 2  # a fresh tensor, as a LoRA merge makes
            alive.append(weakref.ref(t))
            yield k, t
            del t

    write_safetensors(tmp_path / "m.safetensors", WeightStream(dict(SHAPES), make), torch.bfloat16)
    assert held_at_make == [0, 0, 0, 0]
    back = load_file(tmp_path / "m.safetensors")
    assert all(torch.equal(back[k], (v * 2).bfloat16()) for k, v in tensors().items())


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({**SHAPES, "head.bias": (4,)}, r"got head.bias \(3,\), announced \('head.bias', \(4,\)\)"),
        ({"extra.weight": (2,), **SHAPES}, r"got embed.weight \(7, 6\), announced \('extra.weight', \(2,\)\)"),
        ({**SHAPES, "extra.weight": (2,)}, r"1 announced tensors never came, first extra.weight"),
    ],
)
def test_a_stream_unlike_its_announcement_fails_and_keeps_the_last_export(tmp_path, shapes, message):
    sync = VllmWeightSync("http://127.0.0.1:1", tmp_path)
    try:
        sync.export(tensors())
        before = (tmp_path / "model.safetensors").read_bytes()
        state = tensors()
        with pytest.raises(ValueError, match=message):
            sync.export(WeightStream(shapes, lambda: iter({k: v + 1 for k, v in state.items()}.items())))
        assert (tmp_path / "model.safetensors").read_bytes() == before
        assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left
    finally:
        sync.close()


def test_without_a_dtype_each_tensor_keeps_its_own(tmp_path):
    state = {"a": torch.randn(3, 4), "b": torch.randn(5).to(torch.bfloat16), "c": torch.randn(2, 2).t()}
    write_safetensors(tmp_path / "w.safetensors", WeightStream.of(state), None)
    back = load_file(tmp_path / "w.safetensors")
    assert {k: v.dtype for k, v in back.items()} == {k: v.dtype for k, v in state.items()}
    assert all(torch.equal(back[k], v) for k, v in state.items())  # bit for bit
    made = WeightStream({"a": (3, 4)}, lambda: iter(state.items()))  # a made stream announces no dtypes
    with pytest.raises(ValueError, match="needs the stream's dtypes"):
        write_safetensors(tmp_path / "x.safetensors", made, None)


def _sync_answering(tmp_path, refusals: int) -> tuple[VllmWeightSync, list[str]]:
    """A weight sync whose engine refuses the prefix-cache reset ``refusals`` times, as vLLM does while a
    request still holds cache blocks; the paths it was asked for are recorded."""
    asked: list[str] = []

    def engine(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/reset_prefix_cache":
            return httpx.Response(200, json={"success": asked.count("/reset_prefix_cache") > refusals})
        return httpx.Response(200, json={"results": [None]})

    sync = VllmWeightSync("http://engine", tmp_path)
    sync.client = httpx.Client(transport=httpx.MockTransport(engine))
    return sync, asked


def test_a_refused_prefix_cache_reset_is_retried(tmp_path):
    sync, asked = _sync_answering(tmp_path, refusals=2)
    sync.reload()
    assert asked == ["/collective_rpc"] + ["/reset_prefix_cache"] * 3


def test_a_prefix_cache_that_stays_is_an_error_not_stale_rollouts(tmp_path):
    sync, asked = _sync_answering(tmp_path, refusals=10**6)
    with pytest.raises(EngineError, match=r"reset_prefix_cache kept answering success=false .* old weights"):
        sync.reset_prefix_cache(attempts=3, wait=0.0)
    assert asked == ["/reset_prefix_cache"] * 3
