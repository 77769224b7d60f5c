"""How many GPUs this machine shows, read without starting a process or a CUDA context.

Why: a plan must know the GPUs it plans for (Trinity runs its colocate mode on exactly one), and
planning stays pure: no ``nvidia-smi``, no Ray, no CUDA initialisation (which would also pin the
planning process to a device). The order is Ray's own: ``CUDA_VISIBLE_DEVICES`` when set, else the
NVIDIA driver's count through NVML (``nvidia-ml-py``, where installed), else the driver's
``/proc/driver/nvidia/gpus`` folder, else none.
"""

from __future__ import annotations

import os
from pathlib import Path

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


def visible_gpus(environ: dict[str, str] | None = None) -> int:
    """The number of NVIDIA GPUs a process started from here would see (0 on a CPU-only machine)."""
    env = os.environ if environ is None else environ
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids = [d.strip() for d in listed.split(",") if d.strip()]
        # CUDA stops at the first invalid id ("-1" is the usual way to hide every GPU)
        valid = []
        for d in ids:
            if d.startswith("-"):
                break
            valid.append(d)
        return len(valid)
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no library, no driver, or a driver NVML cannot talk to
        pass
    return len(list(NVIDIA_PROC.iterdir())) if NVIDIA_PROC.is_dir() else 0
