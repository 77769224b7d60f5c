"""Only ``flash_attn.bert_padding``, in plain PyTorch, for the lent GPU machine (not flash-attn itself).

Why: Trinity-RFT 0.6.0's trainer (verl 0.8.0) packs every batch with ``flash_attn.bert_padding``'s
three helpers on CUDA (``verl.utils.attention_utils``), even with sdpa attention and
``use_remove_padding: false``. flash-attn has no wheel for the machine's torch 2.11 / CUDA 13 on PyPI
and the machine has no network, so ``scripts/gpu/trinity_kit.sh`` installs this folder there when
no flash-attn is importable. It holds no attention kernels: with it, the model's attention is sdpa
(``attn_implementation: sdpa``, as ``trinity_math_agent.sh`` sets), and anything that looks for
flash-attn's kernels (``flash_attn.flash_attn_interface``, ``flash_attn.ops``) still finds none,
nor any ``flash_attn`` distribution (transformers' ``is_flash_attn_2_available()`` stays False).
On a machine with flash-attn installed, none of this is used.
"""
