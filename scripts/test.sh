#!/usr/bin/env bash
# Set up .venv from the project's own files, build the documentation site strictly (a broken link, a
# missing page or snippet fails), then run the whole test suite (what CI runs).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/config -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$code"
