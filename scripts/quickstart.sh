#!/usr/bin/env bash
# Set up .venv and .venv-vllm from the project's own files, then run astuner's main job: the
# embedded math agent (SmolLM2-135M-Instruct learning multiplication word problems with its python tool,
# GRPO on CPU), records in launcher_record/math_agent_cpu/. Extra arguments go to astuner (e.g. --resume).
set -euo pipefail
cd "$(dirname "$0")/.."
# The main job needs astuner and its engine only: the other backbones' environments and the browser
# for logview's tests are left to scripts/test.sh (or set these to 0 to have them now).
ASTUNER_SKIP_VERL=${ASTUNER_SKIP_VERL:-1} ASTUNER_SKIP_TRINITY=${ASTUNER_SKIP_TRINITY:-1} \
  ASTUNER_SKIP_BROWSER=${ASTUNER_SKIP_BROWSER:-1} scripts/setup_env.sh
exec .venv/bin/astuner --conf tutorial/example_math_agent/math_agent_cpu.yaml --backbone=debug "$@"
