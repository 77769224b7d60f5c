"""Counting this machine's GPUs for a plan, without starting anything."""

from __future__ import annotations

import pytest

from astuner.gpus import visible_gpus


@pytest.mark.parametrize(
    ("listed", "count"),
    [("0", 1), ("0,1", 2), ("2, 3 ,5", 3), ("", 0), ("-1", 0), ("0,-1,1", 1), ("GPU-8c3f,GPU-77a1", 2)],
)
def test_cuda_visible_devices_decides_when_set(listed, count):
    """As CUDA counts them: the listed ids up to the first invalid one (UUIDs count too)."""
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": listed}) == count


def test_without_the_variable_the_driver_is_asked(monkeypatch, tmp_path):
    """No NVML answer and no driver folder: no GPU (this CPU machine; a GPU machine answers through NVML)."""
    import astuner.gpus as gpus

    monkeypatch.setattr(gpus, "NVIDIA_PROC", tmp_path / "no-driver")
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)  # as where nvidia-ml-py is not installed
    assert visible_gpus({}) == 0
    (tmp_path / "gpus" / "0000:17:00.0").mkdir(parents=True)
    (tmp_path / "gpus" / "0000:65:00.0").mkdir()
    monkeypatch.setattr(gpus, "NVIDIA_PROC", tmp_path / "gpus")
    assert visible_gpus({}) == 2
