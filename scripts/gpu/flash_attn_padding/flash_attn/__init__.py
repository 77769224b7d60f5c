"""Only ``flash_attn.bert_padding``, in plain PyTorch, for the lent GPU machine (not flash-attn itself).

Why: Trinity-RFT 0.6.0's trainer (verl 0.8.0) packs every batch with ``flash_attn.bert_padding``'s
three helpers on CUDA (``verl.utils.attention_utils``), even with sdpa attention and
``use_remove_padding: false``. flash-attn has no wheel for the machine's torch 2.11 / CUDA 13 on PyPI
and the machine has no network, so ``scripts/gpu/trinity_kit.sh`` puts this folder in
``/tmp/flash-attn-padding``, which only the trainer's processes add to their path
(``../verl_external_lib.py``: vLLM, seeing any ``flash_attn`` module, imports flash-attn's kernels
from it). It holds no attention kernels: the model's attention is sdpa (``attn_implementation:
sdpa``, as ``trinity_math_agent.sh`` sets); ``flash_attn.ops`` and ``flash_attn.flash_attn_interface``
stay missing (verl then uses plain PyTorch), and there is no ``flash_attn`` distribution
(transformers' ``is_flash_attn_2_available()`` stays False). A real flash-attn, where installed, wins.
"""
