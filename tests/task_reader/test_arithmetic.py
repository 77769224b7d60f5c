"""The generated arithmetic problems: seeded, disjoint splits, and every answer right for its question."""

from __future__ import annotations

import re

import pytest

from astuner.task_reader.arithmetic import ArithmeticTaskReader, generate_tasks


def _solve(question: str) -> int:
    """The answer read back from the question's own words (an independent check of the generator)."""
    numbers = [int(n) for n in re.findall(r"\d+", question)]
    if "in each" in question:
        return numbers[0] * numbers[1]
    story = question.split(". ")[1]
    given_away = re.search(r"gives (\d+) of them to", story)
    total = numbers[0] - int(given_away.group(1)) if given_away else numbers[0] + numbers[1]
    return total + sum(int(n) for n in re.findall(r"then finds (\d+) more", story))


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5, 6])
def test_answers_match_questions_and_generation_is_seeded(difficulty):
    tasks = generate_tasks("train", 200, seed=3, difficulty=difficulty)
    assert [t.main_query for t in tasks] == [t.main_query for t in generate_tasks("train", 200, 3, difficulty)]
    for task in tasks:
        assert task.metadata == {"ground_truth": str(_solve(task.main_query)), "difficulty": difficulty}


def test_level_6_is_a_calculator_task():
    answers = [int(t.metadata["ground_truth"]) for t in generate_tasks("train", 500, seed=0, difficulty=6)]
    assert min(answers) >= 12 * 12 and max(answers) <= 99 * 999
    assert sum(a >= 1000 for a in answers) / len(answers) > 0.9  # four or five digits: no mental arithmetic


def test_splits_differ():
    reader = ArithmeticTaskReader(num_train=50, num_validation=50, seed=0, difficulty=6)
    train = {t.main_query for t in reader.get_training_tasks()}
    assert not train & {t.main_query for t in reader.get_validation_tasks()}
