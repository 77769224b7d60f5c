#!/usr/bin/env bash
# The Trinity-RFT kit on the lent GPU machine (built here by scripts/gpu/pack_trinity.py), from the project root:
#   bash scripts/gpu/trinity_kit.sh stage tNN   # one call per chunk, carrying .gpu/tNN, back to back
#   bash scripts/gpu/trinity_kit.sh install     # joins split wheels, checks SHA256SUMS, installs, converts the model
# After install, a later call on the same warm machine starts with:  source /tmp/trinity-env.sh
# If a stage call prints fewer staged files than the call before, the machine was replaced: start again at t00.
set -euo pipefail
STAGE=/tmp/trinity-stage SITE=/tmp/site-trinity MODEL=/tmp/smollm2
case "${1:?usage: $0 stage tNN | install}" in
  stage)
    src=".gpu/${2:?which chunk, e.g. t00}"; [ -d "$src" ] || { echo "no folder $src (was it carried?)" >&2; exit 1; }
    mkdir -p "$STAGE" && cp -r "$src/." "$STAGE/"
    echo "staged $2; $STAGE holds $(find "$STAGE" -type f | wc -l) files, $(du -sh "$STAGE" | cut -f1)"
    ;;
  install)
    t0=$(date +%s)
    cd "$STAGE"
    for p in *.part-aa; do [ -e "$p" ] && cat "${p%.part-aa}".part-* > "${p%.part-aa}" && rm "${p%.part-aa}".part-*; done
    sha256sum -c --quiet SHA256SUMS || { echo "a chunk is missing or damaged: stage all chunks again" >&2; exit 1; }
    rm -rf "$SITE"
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" ./*.whl
    cd - >/dev/null
    # flash-attn's padding helpers in plain PyTorch for Trinity's trainer processes only, loaded there through
    # verl's model.external_lib (why: scripts/gpu/flash_attn_padding/*.py); never on the engine's path.
    rm -rf /tmp/flash-attn-padding && mkdir -p /tmp/flash-attn-padding
    cp -r scripts/gpu/flash_attn_padding/flash_attn /tmp/flash-attn-padding/
    cp scripts/gpu/flash_attn_padding/verl_external_lib.py "$SITE/astuner_flash_attn_padding.py"
    # ... and in Trinity's trainer actor, which unpads before verl's hook runs: a Trinity plugin of the kit.
    rm -rf /tmp/flash-attn-plugin && mkdir -p /tmp/flash-attn-plugin
    cp scripts/gpu/flash_attn_padding/trinity_plugin/*.py /tmp/flash-attn-plugin/
    # VLLM_USE_FLASHINFER_SAMPLER=0: FlashInfer is not carried (its cubins are ~450 MB).
    # Keep NVLink multicast off (the device notes say why), also in every process Ray starts.
    cat > /tmp/trinity-env.sh <<EOF
export PYTHONPATH=$PWD:$SITE\${PYTHONPATH:+:\$PYTHONPATH} PATH=$SITE/bin:\$PATH
export VLLM_USE_FLASHINFER_SAMPLER=0 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRINITY_PLUGIN_DIRS=/tmp/flash-attn-plugin
EOF
    source /tmp/trinity-env.sh
    if [ ! -f $MODEL/config.json ]; then
      python3 -c "from pathlib import Path; from astuner.model.embedded import convert_gguf
convert_gguf(Path('$STAGE/smollm2.gguf'), Path('$MODEL'))"
    fi
    # Everything Trinity's run imports, imported once here so a missing wheel shows now, by name.
    python3 - <<'EOF'
import importlib, importlib.util, sys
if importlib.util.find_spec("flash_attn") is not None:
    sys.exit("a flash_attn module is on the engine's path: vLLM would import its kernels from it")
mods = ["trinity.cli.launcher", "trinity.explorer.explorer", "trinity.explorer.workflow_runner",
        "trinity.trainer.trainer", "trinity.trainer.verl.workers", "trinity.common.models.vllm_model",
        "trinity.common.models.allocator", "vllm.entrypoints.openai.api_server", "astuner.backbone.trinity.workflow",
        "astuner.backbone.trinity.plugins.colocate_engine", "aiosqlite", "astuner_flash_attn_padding",
        "flash_attn.bert_padding"]
bad = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:
        bad.append(f"{m}: {type(e).__name__}: {e}")
import trinity, vllm, verl, torch
print(f"trinity {trinity.__version__}, vllm {vllm.__version__}, verl {verl.__version__}, torch {torch.__version__}")
print("\n".join(bad) or "all imports ok")
sys.exit(1 if bad else 0)
EOF
    echo "installed $(ls -d $SITE/*.dist-info | wc -l) packages in $(( $(date +%s) - t0 )) s; now: source /tmp/trinity-env.sh"
    ;;
  *) echo "usage: $0 stage tNN | install" >&2; exit 2 ;;
esac
