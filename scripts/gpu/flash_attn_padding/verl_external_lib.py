"""verl's ``model.external_lib`` hook: makes the plain-PyTorch ``flash_attn.bert_padding`` importable in this process.

Why a hook and not the package on ``PYTHONPATH``: vLLM looks for a ``flash_attn`` module
(``find_spec("flash_attn")``) and then imports flash-attn's Triton kernels from it, so the padding
helpers must stay out of the engine's processes (seen on the H200: the engine failed to start with
them on the path). verl imports ``model.external_lib`` when it builds a model config
(``HFModelConfig.__post_init__``), which happens in Trinity's trainer and its FSDP workers only.
``scripts/gpu/trinity_kit.sh`` installs this file as ``astuner_flash_attn_padding`` and the
``flash_attn`` folder beside it in ``/tmp/flash-attn-padding``; ``trinity_math_agent.sh`` names it with
``trinity.trainer.trainer_config.actor_rollout_ref.model.external_lib``.
"""

import os
import sys

PADDING_DIR = os.environ.get("ASTUNER_FLASH_ATTN_PADDING", "/tmp/flash-attn-padding")
if PADDING_DIR not in sys.path:
    sys.path.append(PADDING_DIR)  # after everything else: a real flash-attn, where installed, wins
