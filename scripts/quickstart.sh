#!/usr/bin/env bash
# Set up .venv and .venv-vllm from the project's own files, then run astuner's main job: the
# embedded math agent (SmolLM2-135M-Instruct learning multiplication word problems with its python tool,
# GRPO on CPU), records in launcher_record/math_agent_cpu/. Extra arguments go to astuner (e.g. --resume).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
exec .venv/bin/astuner --conf tutorial/example_math_agent/math_agent_cpu.yaml --backbone=debug "$@"
