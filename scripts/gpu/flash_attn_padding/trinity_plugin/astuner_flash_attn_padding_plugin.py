"""A Trinity plugin of the GPU kit: flash-attn's padding helpers in Trinity's trainer process only.

Why a plugin, beside verl's ``model.external_lib`` hook (``../verl_external_lib.py``): Trinity-RFT 0.6.0's
trainer actor itself unpads batches (``trinity.trainer.verl.monkey_patch.left_right_2_no_padding``, through
``verl.utils.attention_utils`` -> ``flash_attn.bert_padding``) before any model config is built in it, so the
hook comes too late there (seen on the H100, 2026-12-06: "Error in Trainer: No module named 'flash_attn'" in
``_compute_ref_log_prob``, first training step). Trinity loads the plugins of ``TRINITY_PLUGIN_DIRS`` in its
launcher, explorer, trainer and experience-pipeline processes, never in the vLLM engine's, which must not see
a ``flash_attn`` module (vLLM then imports flash-attn's Triton kernels from it). This acts only in the
process that holds Trinity's trainer (``trinity.trainer.trainer`` imported), and appends the folder after
everything else, so a real flash-attn, where installed, wins. ``scripts/gpu/trinity_kit.sh`` installs it
into ``/tmp/flash-attn-plugin`` and names that folder in ``TRINITY_PLUGIN_DIRS``; astuner's own plugin folder
is put first by the plan, and both load.
"""

import os
import sys

PADDING_DIR = os.environ.get("ASTUNER_FLASH_ATTN_PADDING", "/tmp/flash-attn-padding")
if "trinity.trainer.trainer" in sys.modules and PADDING_DIR not in sys.path:
    sys.path.append(PADDING_DIR)
