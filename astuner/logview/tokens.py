"""Token ids -> the text of each token, for the sample page's chips.

Uses the ``tokenizers`` library on ``tokenizer.json`` directly: it loads in milliseconds (the
viewer must start fast next to a run) and decodes 10k ids in a few ms. The tokenizer is looked
up where a reader of old records will still find it: ``<experiment>/tokenizer/`` (saved by the
run), then the model folder named in ``config.yaml``. Without either, chips show ids only.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml


class TokenDecoder:
    """Decodes single tokens; ``source`` says which tokenizer is used (or why none)."""

    def __init__(self, tokenizer_json: Path | None, reason: str = ""):
        self._tok: Any = None
        self.source = reason or "no tokenizer found: showing token ids"
        if tokenizer_json is not None:
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_file(str(tokenizer_json))
            self.source = str(tokenizer_json)
        self._piece = lru_cache(maxsize=200_000)(self._decode_one)

    @classmethod
    def for_experiment(cls, root: Path) -> TokenDecoder:
        candidates = [root / "tokenizer" / "tokenizer.json"]
        model_path = _configured_model_path(root / "config.yaml")
        if model_path:
            candidates.append(Path(model_path).expanduser() / "tokenizer.json")
        for path in candidates:
            if path.is_file():
                try:
                    return cls(path)
                except Exception as exc:  # a corrupt file must not stop the viewer
                    return cls(None, f"cannot read {path}: {exc}; showing token ids")
        return cls(None)

    def _decode_one(self, token_id: int) -> str:
        text = self._tok.decode([token_id], skip_special_tokens=False)
        if text == "\ufffd" or not text:
            # part of a multi-byte character, or a token that decodes to nothing: its vocabulary
            # form says more than a replacement character would
            return self._tok.id_to_token(token_id) or f"<{token_id}>"
        return text

    def pieces(self, ids: list[int]) -> list[str] | None:
        if self._tok is None:
            return None
        return [self._piece(int(i)) for i in ids]


def _configured_model_path(config_yaml: Path) -> str | None:
    if not config_yaml.is_file():
        return None
    try:
        data = yaml.safe_load(config_yaml.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    path = ((data or {}).get("astuner") or {}).get("model", {}).get("path")
    return path if isinstance(path, str) and not path.startswith("builtin:") else None
