"""The oneMKL first-call workaround (``vector_math.py``): active where torch bundles an affected oneMKL, only there."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from astuner.backbone.debug import vector_math


def test_contract_the_pinned_torch_bundles_the_affected_onemkl():
    """When this fails, the pinned torch bundles another oneMKL: check pytorch/pytorch#188792 and, if that oneMKL
    has no first-call race (>= 2025.0), delete ``vector_math.py`` and its call in the trainer."""
    version = vector_math.bundled_mkl_version()
    assert version is not None and vector_math.affected(version), version


@pytest.mark.parametrize(
    ("version", "expected"),
    [("2024.2-Product", True), ("2024.2.2", True), ("2025.0-Product", False), ("2024.1", False), (None, False)],
)
def test_only_affected_versions_get_the_workaround(version, expected):
    assert vector_math.affected(version) is expected


def test_every_listed_op_is_a_torch_unary_op_on_float_and_double():
    for name in vector_math.VML_OPS:
        for dtype in (torch.float32, torch.float64):
            x = torch.full((3,), 0.5, dtype=dtype)
            assert getattr(torch, name)(x).shape == (3,), name


def test_resolves_once_per_process_and_changes_no_result(tmp_path):
    """In a fresh process: the first call resolves (True), the second does nothing, and the ops then give the
    values of a one-thread process that never ran it (no concurrent first call there, so no race)."""
    script = (
        "import sys, torch\n"
        "from astuner.backbone.debug import vector_math as v\n"
        "warm = sys.argv[2] == 'warm'\n"
        "torch.set_num_threads(2 if warm else 1)\n"
        "calls = [v.resolve_vector_math_kernels(), v.resolve_vector_math_kernels()] if warm else []\n"
        "x = torch.linspace(-3, 3, 20000)\n"
        "values = {n: getattr(torch, n)(x) for n in ('cos', 'sin', 'exp', 'tanh')}\n"
        "torch.save({'calls': calls, **values}, sys.argv[1])\n"
    )
    results = {}
    for mode in ("warm", "cold"):
        out = tmp_path / f"{mode}.pt"
        subprocess.run([sys.executable, "-c", script, str(out), mode], check=True, timeout=120)
        results[mode] = torch.load(out)
    assert results["warm"].pop("calls") == [True, False]
    results["cold"].pop("calls")
    for name, value in results["cold"].items():
        assert torch.equal(results["warm"][name], value), name
