"""Reward 1 for a final ``\\boxed{...}`` answer equal to the task's ground truth, else 0.

The answer is extracted first (the last ``\\boxed{}``/``\\fbox{}``), then compared: as exact
numbers when both sides are numbers once formatting is stripped (``1,234``, ``$18``, ``50\\%``,
``72.0``, ``\\frac{3}{4}``, ``18 dollars``), otherwise symbolically with math-verify. Extracting
before math-verify matters: on whole solutions it misreads dollar amounts about 0.3% of the time.
A missing ``\\boxed{}`` scores 0: the workflow's prompt asks for it, and RL should reward the format.
With ``task_judge.unboxed_answer_reward = r > 0`` a correct *last number* without a box earns ``r``
(not a success): partial credit that gives a small model a signal before it has learned the format.
With ``task_judge.boxed_wrong_answer_reward = f > 0`` a boxed answer that is wrong earns ``f``: a format
reward, for a model that rarely boxes. The main job uses f = 0.25 and no credit for an unboxed number,
which would teach the unboxed answer while no episode boxes (docs/getting-started/main-job.md says why).
An empty ``\boxed{}`` (the prompt's, copied) earns nothing.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction

from astuner.task_judge.base_judge import BaseJudge, JudgeResult
from astuner.workflow.base import WorkflowOutput, WorkflowTask

_BOX = re.compile(r"\\(?:boxed|fbox)\s*")
_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textrm|mbox)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\s*\{\s*(-?[\d.]+)\s*\}\s*\{\s*(-?[\d.]+)\s*\}$")
_SLASH = re.compile(r"^(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)$")
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_NUMBER_WITH_WORDS = re.compile(r"^[A-Za-z\s=:≈~]*?(-?\d[\d,]*(?:\.\d+)?|-?\.\d+)\s*[A-Za-z\s./]*$")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (balanced braces) or ``\\boxed x``; None if absent."""
    matches = list(_BOX.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    if start >= len(text):
        return None
    if text[start] != "{":
        token = re.match(r"[^\s$]+", text[start:])
        return token.group(0) if token else None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i].strip()
    return None  # unbalanced: the model did not finish the box


def _strip_formatting(s: str) -> str:
    s = s.strip()
    for _ in range(3):
        s = _WRAPPERS.sub(r"\1", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.replace("\\!", "").replace("\\,", "").replace("\\ ", " ").replace("{,}", ",")
    s = s.replace("\\left", "").replace("\\right", "")
    return s.strip().rstrip(".").strip()


def as_number(s: str) -> Fraction | None:
    """The exact value of a plainly written number, or None if ``s`` is not one."""
    s = _strip_formatting(s)
    frac = _FRAC.match(s) or _SLASH.match(s)
    try:
        if frac is not None and frac.re is _FRAC:
            value = Fraction(frac.group(2)) / Fraction(frac.group(3))
            return -value if frac.group(1) else value
        if frac is not None:
            return Fraction(frac.group(1)) / Fraction(frac.group(2))
        m = _NUMBER_WITH_WORDS.match(s)
        if m is None:
            return None
        digits = m.group(1)
        if "," in digits and not re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", digits):
            return None  # '1,2' is a list, not a thousands separator
        return Fraction(digits.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def _symbolic_equal(pred: str, gold: str) -> bool:
    from math_verify import parse, verify

    # math-verify's timeouts use signals, which work only in the main thread.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    gold_parsed = parse(f"${gold}$", parsing_timeout=timeout)
    pred_parsed = parse(f"${pred}$", parsing_timeout=timeout)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))


def answers_match(pred: str, gold: str) -> bool:
    """Whether an extracted answer equals the ground truth (numerically, else symbolically)."""
    p, g = as_number(pred), as_number(gold)
    if p is not None and g is not None:
        return p == g or abs(p - g) <= Fraction(1, 10**6) * max(1, abs(g))
    return _symbolic_equal(_strip_formatting(pred), _strip_formatting(gold))


class MathAnswerAsJudge(BaseJudge):
    """Compare ``workflow_output.metadata["final_answer"]`` with ``task.metadata["ground_truth"]``.

    Returns ``(1.0, True)`` for a correct boxed answer; otherwise ``(r, False)``, with ``r`` the
    ``task_judge.boxed_wrong_answer_reward`` for a wrong boxed answer, ``task_judge.unboxed_answer_reward``
    for the right number unboxed, and 0.0 for anything else (an empty box included).

    Raises:
        KeyError: the workflow did not put ``final_answer`` in its metadata, or the task has no
            ``ground_truth`` (a bug in the workflow or the task source, not a wrong answer).
    """

    def compute_reward(self, workflow_task: WorkflowTask, workflow_output: WorkflowOutput) -> JudgeResult:
        if "final_answer" not in workflow_output.metadata:
            raise KeyError(
                "MathAnswerAsJudge needs workflow_output.metadata['final_answer']; the workflow returned keys "
                f"{sorted(workflow_output.metadata)}"
            )
        if "ground_truth" not in workflow_task.task.metadata:
            raise KeyError(
                f"MathAnswerAsJudge needs task.metadata['ground_truth']; task {workflow_task.task.task_id} has keys "
                f"{sorted(workflow_task.task.metadata)} (set task_reader.answer_field)"
            )
        answer = str(workflow_output.metadata["final_answer"])
        truth = str(workflow_task.task.metadata["ground_truth"])
        boxed = last_boxed(answer)
        if boxed is None:
            partial = self.config.task_judge.unboxed_answer_reward if self.config is not None else 0.0
            numbers = _LAST_NUMBER.findall(answer)
            if partial > 0 and numbers and answers_match(numbers[-1], truth):
                return partial, False
            return 0.0, False
        if not boxed:  # an empty box is the prompt's ``\boxed{}`` copied, not an answer
            return 0.0, False
        if answers_match(boxed, truth):
            return 1.0, True
        return (self.config.task_judge.boxed_wrong_answer_reward if self.config is not None else 0.0), False
