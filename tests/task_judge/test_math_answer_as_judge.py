"""MathAnswerAsJudge over a table of answer forms."""

from __future__ import annotations

import dataclasses

import pytest

from astuner import Task, WorkflowOutput, WorkflowTask
from astuner.config.schema import AstunerConfig
from astuner.task_judge.math_answer_as_judge import MathAnswerAsJudge, as_number, last_boxed


def judge(final_answer: str, ground_truth: str) -> tuple[float, bool]:
    task = WorkflowTask(task=Task(task_id="t", main_query="q", metadata={"ground_truth": ground_truth}))
    return MathAnswerAsJudge().compute_reward(task, WorkflowOutput(metadata={"final_answer": final_answer}))


# (model's final answer, ground truth, expected success)
CASES = [
    (r"The answer is \boxed{72}.", "72", True),
    (r"\boxed{72.0}", "72", True),
    (r"\boxed{72.00}", "72", True),
    (r"\boxed{1,234}", "1234", True),
    (r"\boxed{1{,}234}", "1234", True),
    (r"\boxed{\$18}", "18", True),
    (r"\boxed{$18$}", "18", True),
    (r"\boxed{18 dollars}", "18", True),
    (r"\boxed{\text{18 dollars}}", "18", True),
    (r"\boxed{18\text{ cm}}", "18", True),
    (r"\boxed{50\%}", "50", True),
    (r"\boxed{50%}", "50", True),
    (r"\boxed{\frac{3}{4}}", "0.75", True),
    (r"\boxed{\dfrac{1}{2}}", "0.5", True),
    (r"\boxed{3/4}", "0.75", True),
    (r"\boxed{-5}", "-5", True),
    (r"\boxed{ 42 }", "42", True),
    (r"\boxed{x = 5}", "5", True),
    (r"first \boxed{3} then corrected \boxed{4}", "4", True),
    (r"\boxed{4} is final", "4", True),
    (r"\boxed 7", "7", True),
    (r"\fbox{9}", "9", True),
    (r"\boxed{\frac{10}{4}}", r"\frac{5}{2}", True),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}", True),
    (r"\boxed{0.5}", r"\frac{1}{2}", True),
    (r"\boxed{1,080}", "1080", True),
    (r"\boxed{850,000}", "850000", True),
    (r"\boxed{72}", "73", False),
    (r"\boxed{7.2}", "72", False),
    (r"72", "72", False),  # no box: the prompt asks for one
    (r"\boxed{}", "72", False),
    (r"\boxed{72", "72", False),  # unbalanced, unfinished
    (r"\boxed{1,2}", "12", False),  # a list, not a thousands separator
    (r"\boxed{seventy-two}", "72", False),
    (r"\boxed{-72}", "72", False),
    (r"\boxed{3/4}", "0.7", False),
]


@pytest.mark.parametrize(("final_answer", "ground_truth", "expected"), CASES)
def test_answer_forms(final_answer, ground_truth, expected):
    reward, success = judge(final_answer, ground_truth)
    assert success is expected and reward == (1.0 if expected else 0.0)


def test_table_is_large_enough():
    assert len(CASES) >= 30


def test_last_boxed_handles_nested_braces():
    assert last_boxed(r"\boxed{\frac{1}{2}} and \boxed{\sqrt{\frac{a}{b}}}") == r"\sqrt{\frac{a}{b}}"
    assert last_boxed("no box") is None


def test_as_number():
    assert as_number("1,234.5") == as_number("1234.5")
    assert as_number("abc") is None


def test_missing_final_answer_is_a_workflow_bug():
    task = WorkflowTask(task=Task(task_id="t", main_query="q", metadata={"ground_truth": "1"}))
    with pytest.raises(KeyError, match=r"metadata\['final_answer'\]"):
        MathAnswerAsJudge().compute_reward(task, WorkflowOutput(metadata={"answer": "1"}))


def test_missing_ground_truth_names_the_task():
    task = WorkflowTask(task=Task(task_id="train-3", main_query="q"))
    with pytest.raises(KeyError, match="task train-3"):
        MathAnswerAsJudge().compute_reward(task, WorkflowOutput(metadata={"final_answer": r"\boxed{1}"}))


def test_works_outside_the_main_thread():
    """math-verify's signal timeouts only work in the main thread; the judge must not crash elsewhere."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(judge, r"\boxed{2\sqrt{2}}", r"\sqrt{8}").result() == (1.0, True)


@pytest.mark.parametrize(
    ("final_answer", "unboxed", "boxed_wrong", "expected"),
    [
        ("The answer is 72", 0.0, 0.0, (0.0, False)),
        ("The answer is 72", 0.5, 0.0, (0.5, False)),  # a correct last number, unboxed
        ("72 is not 71", 0.5, 0.5, (0.0, False)),  # the last number is wrong and unboxed
        (r"\boxed{71}", 0.0, 0.0, (0.0, False)),
        (r"\boxed{71}", 0.5, 0.3, (0.3, False)),  # the format reward: boxed, wrong
        (r"\boxed{}", 0.5, 0.3, (0.0, False)),  # the prompt's empty box copied: no answer
        (r"\boxed{72}", 0.5, 0.3, (1.0, True)),
    ],
)
def test_partial_rewards_for_the_number_and_for_the_box(final_answer, unboxed, boxed_wrong, expected):
    cfg = AstunerConfig()
    cfg.task_judge = dataclasses.replace(
        cfg.task_judge, unboxed_answer_reward=unboxed, boxed_wrong_answer_reward=boxed_wrong
    )
    task = WorkflowTask(task=Task(task_id="t", main_query="q", metadata={"ground_truth": "72"}))
    output = WorkflowOutput(metadata={"final_answer": final_answer})
    assert MathAnswerAsJudge(config=cfg).compute_reward(task, output) == expected
