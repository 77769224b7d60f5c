#!/usr/bin/env bash
# Set up .venv from the project's own files and run astuner's main job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
exec .venv/bin/astuner --conf tutorial/example_math_agent/math_agent.yaml --dry-run "$@"
