"""Talking to the Hugging Face Hub without hanging when it cannot be reached.

``huggingface_hub`` and ``datasets`` retry for ~25 s on an offline machine. astuner probes the hub
endpoint first (a 3 s TCP connect) and fails at once with a message naming the local alternative.
With ``HF_HUB_OFFLINE=1`` the local Hugging Face cache is used, as the libraries do.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


def offline_mode() -> bool:
    """Whether the user asked the Hugging Face libraries to stay offline (use the cache only)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub endpoint opens within ``timeout`` seconds."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False
