"""Workaround for a oneMKL race that made identical debug-backbone updates come out different (pytorch/pytorch#188792).

ATen computes contiguous float unary ops (``cos``, ``sin``, ``exp``, ``log``, ``sqrt``, ``tanh``...) with oneMKL's
vector math (VML), each intra-op thread on its own chunk. The oneMKL that torch's x86 wheels bundle (2024.2) picks
a VML function's kernel on that function's first call; when the first call runs on two threads at once, one of
them can run the low-accuracy kernel for its chunk, although ATen asks for high accuracy. Later calls are right.

What it did here (2-core machine, torch 2.13): in 8 of 77 one-step runs of the debug backbone (7 of 47 with
forward hooks hashing every layer's output, 1 of 30 without), the update's first VML call, the rotary embedding's
``cos``, came out 1 bf16 ulp off in 58 of the 8,192 values the worker thread computed (bit for bit oneMKL's
low-accuracy kernel), so the same rollouts trained to other weights. That failed CI's resume test: two of its
runs trained step 1, before any interruption, from identical rollouts to the same wrong weights as one of these
runs did. With this workaround: 0 of 50 runs (with the hooks).

The workaround calls each of those functions once on one element, which ATen runs in the calling thread, before
the trainer computes anything: every kernel is resolved before any call can race. It runs only where torch
reports an affected oneMKL; ``tests/backbone/debug/test_vector_math.py`` fails once the pinned torch bundles
another one, so that this module is deleted then (the upstream fix: pytorch/pytorch#188791, or oneMKL >= 2025.0).
"""

from __future__ import annotations

import re

import torch
from loguru import logger

# The unary ops ATen routes to oneMKL's VML for float and double (aten/src/ATen/cpu/vml.h).
VML_OPS = (
    "abs", "acos", "asin", "atan", "ceil", "cos", "digamma", "erf", "erfc", "erfinv", "exp", "expm1", "floor",
    "i0", "lgamma", "log", "log10", "log1p", "log2", "neg", "reciprocal", "round", "rsqrt", "sin", "sqrt", "tan",
    "tanh", "trunc",
)  # fmt: skip
AFFECTED_MKL = ("2024.2",)

_resolved = False


def bundled_mkl_version() -> str | None:
    """The oneMKL version torch was built with (``torch.__config__.show()``), None without MKL."""
    found = re.search(r"Math Kernel Library Version (\S+)", torch.__config__.show())
    return found.group(1) if found else None


def affected(version: str | None) -> bool:
    """Whether oneMKL ``version`` (e.g. ``2024.2-Product``) has the first-call race."""
    return version is not None and version.startswith(AFFECTED_MKL)


def resolve_vector_math_kernels() -> bool:
    """Resolve every VML kernel in this thread, once per process; returns whether this call did it."""
    global _resolved
    if _resolved or not affected(bundled_mkl_version()):
        return False
    for dtype in (torch.float32, torch.float64):
        one = torch.full((1,), 0.5, dtype=dtype)
        for name in VML_OPS:
            getattr(torch, name)(one)
    _resolved = True
    logger.debug("oneMKL VML kernels resolved before training (workaround for pytorch/pytorch#188792)")
    return True
