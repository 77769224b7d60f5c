"""A corpus of broken experiment configs: each is the tutorial YAML with one mistake a user makes.

Each case: an id, a mutation of the YAML tree (or of its text, or the command line), and what
the error line must name (the key or the value). ``check()`` runs the real CLI in-process
(``astuner --conf X --dry-run``) and says whether the answer is a one-line error naming the file
(or "command line"), the key, and what is allowed, with exit code 2 and no traceback. Used by
``tests/config/test_bad_config_corpus.py`` and ``bench/reliability.py``.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "tutorial" / "example_math_agent" / "math_agent.yaml"


def _parent(tree: dict, path: str) -> tuple[dict, str]:
    *parents, last = path.split(".")
    for p in parents:
        tree = tree[p]
    return tree, last


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def mutate(tree: dict) -> None:
        node, key = _parent(tree, path)
        node[key] = value

    return mutate


def _rename(path: str, new: str) -> Callable[[dict], None]:
    def mutate(tree: dict) -> None:
        node, key = _parent(tree, path)
        node[new] = node.pop(key)

    return mutate


def _delete(path: str) -> Callable[[dict], None]:
    def mutate(tree: dict) -> None:
        node, key = _parent(tree, path)
        del node[key]

    return mutate


def _many(*mutations: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(tree: dict) -> None:
        for m in mutations:
            m(tree)

    return mutate


@dataclass
class Case:
    id: str
    mutate: Callable[[dict], None] | None = None
    must_name: tuple[str, ...] = ()  # substrings the error must contain (key, value, allowed values)
    text: Callable[[str], str] | None = None  # mutate the YAML text instead of the tree
    args: tuple[str, ...] = ()  # extra command-line arguments
    conf: str | None = None  # a --conf path instead of the mutated file
    files: dict[str, str] = field(default_factory=dict)  # files to create beside the YAML


A = "astuner"
CASES: list[Case] = [
    # typos at every level
    Case("typo-top-level", _rename("astuner", "astuer"), ("astuer",)),
    Case("typo-project-name", _rename(f"{A}.project_name", "project_nme"), ("project_nme", "project_name")),
    Case("typo-task-reader-type", _rename(f"{A}.task_reader.type", "tpye"), ("tpye", "type")),
    Case(
        "typo-dataset-path",
        _rename(f"{A}.task_reader.huggingface_dat_repo.dataset_path", "dataset_pth"),
        ("dataset_pth", "dataset_path"),
    ),
    Case("typo-batch-size", _rename(f"{A}.data.train_batch_size", "train_batch_szie"), ("train_batch_szie",)),
    Case("typo-temperature", _rename(f"{A}.rollout.temperature", "temprature"), ("temprature", "temperature")),
    Case(
        "typo-multi-turn",
        _rename(f"{A}.rollout.multi_turn.max_sample_per_task", "max_sample_per_tsk"),
        ("max_sample_per_tsk", "max_sample_per_task"),
    ),
    Case("typo-engine", _set(f"{A}.rollout.engine", {"enforce_eagr": True}), ("enforce_eagr", "enforce_eager")),
    Case(
        "engine-flag-twice",
        _set(f"{A}.rollout.engine", {"gpu_memory_utilization": 0.5, "extra_args": ["--gpu-memory-utilization", "0.3"]}),
        ("astuner.rollout.engine.extra_args", "sets --gpu-memory-utilization", "drop it from extra_args"),
    ),
    Case(
        "engine-stopped-and-kept",
        _set(f"{A}.rollout.engine", {"stop_during_update": True, "keep_alive": True}),
        ("astuner.rollout.engine.stop_during_update", "keep_alive = true", "set one of them to false"),
    ),
    Case(
        "engine-memory-range", _set(f"{A}.rollout.engine", {"gpu_memory_utilization": 1.5}), ("between 0.05 and 0.95",)
    ),
    Case("typo-judge", _rename(f"{A}.task_judge.judge_protocol", "judge_protocl"), ("judge_protocl",)),
    Case("typo-model-path", _rename(f"{A}.model.path", "pth"), ("pth",)),
    Case("typo-save-freq", _rename(f"{A}.trainer_common.save_freq", "save_freqq"), ("save_freqq", "save_freq")),
    Case("typo-algorithm", _set(f"{A}.algorithm", {"adv_estimater": "grpo"}), ("adv_estimater", "adv_estimator")),
    Case("wrong-section", _set(f"{A}.optim", {"temperature": 0.5}), ("optim.temperature", "rollout.temperature")),
    Case("typo-debug", _set(f"{A}.debug", {"max_paralel": 1}), ("max_paralel", "max_parallel")),
    Case("typo-trinity-section", _rename("trinity", "trinty"), ("trinty",)),
    # wrong types
    Case("type-batch-size", _set(f"{A}.data.train_batch_size", "eight"), ("train_batch_size", "eight")),
    Case("type-temperature", _set(f"{A}.rollout.temperature", "hot"), ("temperature", "hot")),
    Case("type-num-repeat-float", _set(f"{A}.rollout.num_repeat", 2.5), ("num_repeat", "2.5")),
    Case("type-checklist-string", _set(f"{A}.rollout.compute_madness_checklist", 7), ("compute_madness_checklist",)),
    Case("type-logger", _set(f"{A}.trainer_common.logger", 5), ("logger",)),
    Case("type-section-scalar", _set(f"{A}.rollout.multi_turn", 3), ("multi_turn",)),
    Case("type-bool", _set(f"{A}.debug", {"rollout_only": "maybe"}), ("rollout_only", "maybe")),
    Case("type-lr-list", _set(f"{A}.optim", {"lr": [1e-5]}), ("optim.lr",)),
    Case("type-model-scalar", _set(f"{A}.model", "Qwen/Qwen2.5-7B"), ("model",)),
    Case("type-project-name-list", _set(f"{A}.project_name", ["a", "b"]), ("project_name",)),
    # out-of-range values
    Case("range-temperature", _set(f"{A}.rollout.temperature", -1.0), ("temperature", "-1")),
    Case("range-batch-size", _set(f"{A}.data.train_batch_size", 0), ("train_batch_size", ">= 1")),
    Case("range-num-repeat", _set(f"{A}.rollout.num_repeat", 0), ("num_repeat",)),
    Case("range-lr", _set(f"{A}.optim", {"lr": -1e-5}), ("optim.lr",)),
    Case("range-env-workers", _set(f"{A}.rollout.max_env_worker", 0), ("max_env_worker",)),
    Case("range-tp", _set(f"{A}.rollout.tensor_model_parallel_size", 0), ("tensor_model_parallel_size",)),
    Case("range-episode-timeout", _set(f"{A}.rollout.episode_timeout", 0), ("episode_timeout",)),
    Case("range-epochs", _set(f"{A}.trainer_common.total_epochs", 0), ("total_epochs",)),
    Case("range-hang-timeout", _set(f"{A}.rollout.hang_timeout", -5), ("hang_timeout",)),
    Case("choice-adv-estimator", _set(f"{A}.algorithm", {"adv_estimator": "ppo2"}), ("adv_estimator", "ppo2", "grpo")),
    Case("choice-madness-check", _set(f"{A}.rollout.compute_madness_checklist", ["bogus"]), ("bogus", "nonsense")),
    Case("choice-reader-type", _set(f"{A}.task_reader.type", "env"), ("task_reader.type", "env", "dataset_file")),
    # missing required keys
    Case("missing-workflow", _delete(f"{A}.rollout.agentscope_workflow"), ("agentscope_workflow",)),
    Case("missing-model-path", _delete(f"{A}.model.path"), ("model.path",)),
    Case(
        "missing-dataset-path",
        _delete(f"{A}.task_reader.huggingface_dat_repo.dataset_path"),
        ("dataset_path",),
    ),
    Case(
        "missing-training-file",
        _set(f"{A}.task_reader.type", "dataset_file"),
        ("training_path",),
    ),
    # unknown backbone
    Case("backbone-yaml", _set(f"{A}.backbone", "tpu"), ("backbone", "tpu", "debug")),
    Case("backbone-flag", None, ("backbone", "tpu"), args=("--backbone", "tpu")),
    # bad module->Class references
    Case(
        "class-missing-attr",
        _set(f"{A}.task_judge.judge_protocol", "astuner.task_judge.math_answer_as_judge->MathJudge"),
        ("judge_protocol", "MathJudge"),
    ),
    Case(
        "class-missing-module",
        _set(f"{A}.task_judge.judge_protocol", "astuner.task_judge.nope->X"),
        ("judge_protocol", "astuner.task_judge.nope"),
    ),
    Case("class-no-arrow", _set(f"{A}.task_judge.judge_protocol", "MathAnswerAsJudge"), ("judge_protocol", "->")),
    Case(
        "class-wrong-workflow",
        _set(f"{A}.rollout.agentscope_workflow", "tutorial.example_math_agent.workflow->Nope"),
        ("agentscope_workflow", "Nope"),
    ),
    Case(
        "class-not-a-workflow",
        _set(f"{A}.rollout.agentscope_workflow", "astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge"),
        ("agentscope_workflow", "Workflow"),
    ),
    Case(
        "class-not-a-judge",
        _set(f"{A}.task_judge.judge_protocol", "tutorial.example_math_agent.workflow->MathAgentWorkflow"),
        ("judge_protocol", "BaseJudge"),
    ),
    Case(
        "class-broken-module",
        _set(f"{A}.rollout.agentscope_workflow", "broken_wf.py->W"),
        ("agentscope_workflow", "broken_wf.py"),
        files={"broken_wf.py": "def broken(:\n"},
    ),
    # missing files
    Case(
        "file-missing-dataset",
        _many(
            _set(f"{A}.task_reader.type", "dataset_file"),
            _set(f"{A}.task_reader.dataset_file", {"training_path": "/nonexistent/train.jsonl"}),
        ),
        ("training_path", "/nonexistent/train.jsonl"),
    ),
    Case("file-missing-model", _set(f"{A}.model.path", "/nonexistent/model"), ("model.path", "/nonexistent/model")),
    Case("file-missing-conf", None, ("/nonexistent/exp.yaml",), conf="/nonexistent/exp.yaml"),
    Case("file-missing-workflow-file", _set(f"{A}.rollout.agentscope_workflow", "nofile.py->W"), ("nofile.py",)),
    # conflicting keys
    Case(
        "conflict-turn-vs-context",
        _set(f"{A}.rollout.max_response_length_in_one_turn", 20000),
        ("max_response_length_in_one_turn", "max_model_len"),
    ),
    Case(
        "conflict-prompt-vs-context",
        _set(f"{A}.data.max_prompt_length", 20000),
        ("max_prompt_length", "max_model_len"),
    ),
    Case("conflict-grpo-one-repeat", _set(f"{A}.rollout.num_repeat", 1), ("num_repeat",)),
    Case("range-dual-clip", _set(f"{A}.algorithm", {"clip_ratio_c": 1.0}), ("clip_ratio_c", "must be > 1")),
    Case(
        "conflict-clip",
        _set(f"{A}.algorithm", {"clip_ratio_low": 5.0}),
        ("clip_ratio_low",),
    ),
    # YAML and command-line mistakes
    Case(
        "yaml-duplicate-key",
        None,
        ("temperature",),
        text=lambda t: t.replace("rollout:\n", "rollout:\n    temperature: 1.0\n", 1),
    ),
    Case("yaml-syntax", None, ("line",), text=lambda t: t.replace("num_repeat: 4", "num_repeat: [4")),
    Case("yaml-tab", None, ("tab",), text=lambda t: t.replace("    num_repeat: 4", "\tnum_repeat: 4")),
    Case("override-unknown-key", None, ("astuner.rollout.nope", "command line"), args=("astuner.rollout.nope=1",)),
    Case("override-bad-value", None, ("num_repeat", "x", "command line"), args=("astuner.rollout.num_repeat=x",)),
    Case("override-malformed", None, ("astuner.rollout.temperature",), args=("astuner.rollout.temperature",)),
    Case("experiment-name-slash", _set(f"{A}.experiment_name", "a/b"), ("experiment_name", "a/b")),
    Case(
        "defaults-missing", None, ("nope_default",), text=lambda t: t.replace("  - astuner_default", "  - nope_default")
    ),
    Case("verl-top-level-typo", _set("actor_rollout_reff", {"x": 1}), ("actor_rollout_reff",)),
]


@dataclass
class Verdict:
    case: str
    ok: bool
    code: int
    stderr: str
    why: str = ""


def check(case: Case, folder: Path) -> Verdict:
    """Run ``astuner --conf <mutated yaml> --dry-run`` in-process from the repository root."""
    import os

    from astuner.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in case.files.items():
        (folder / name).write_text(text)
    conf = folder / f"{case.id}.yaml"
    source = TUTORIAL.read_text()
    if case.text:
        conf.write_text(case.text(source))
    else:
        tree = yaml.safe_load(source)
        if case.mutate:
            tree = copy.deepcopy(tree)
            case.mutate(tree)
        conf.write_text(yaml.safe_dump(tree, sort_keys=False))
    conf_arg = case.conf or str(conf)
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(["--conf", conf_arg, "--dry-run", *case.args])
            except SystemExit as exc:  # argparse
                code = int(exc.code or 0)
            except Exception as exc:  # a traceback: the corpus exists to find these
                import traceback

                return Verdict(case.id, False, -1, traceback.format_exc(), f"raised {type(exc).__name__}")
    finally:
        os.chdir(cwd)
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip() and " WARNING " not in ln]
    problems = []
    if code != 2:
        problems.append(f"exit code {code}")
    if "Traceback" in text:
        problems.append("traceback")
    if not lines:
        problems.append("no error line")
    errors = [ln for ln in lines if "error" in ln]
    missing = [s for s in case.must_name if not any(s in ln for ln in errors)]
    if missing:
        problems.append(f"does not name {missing}")
    source_named = case.id.startswith(("backbone-flag", "file-missing-conf")) or any(
        (conf.name in ln or "command line" in ln or conf_arg in ln) for ln in errors
    )
    if not source_named:
        problems.append("does not name the file or the command line")
    return Verdict(case.id, not problems, code, text, "; ".join(problems))
