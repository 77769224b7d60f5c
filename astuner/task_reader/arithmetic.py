"""Embedded tasks: seeded, procedurally generated grade-school arithmetic word problems.

They ship with astuner (no dataset download), so the embedded CPU job runs on a fresh offline
machine, and their difficulty can be set where a 135M model still gets a mix of right and wrong
answers, which is what GRPO learns from (on GSM8K such a model scores ~0: no signal).

Difficulty levels (``task_reader.arithmetic.difficulty``):
    1: a + b, one-digit numbers            2: a + b or a - b, up to two digits
    3: a × b with one digit, or level 2    4: two operations, up to two digits
    5: two or three operations, up to three digits
    6: a × b, a two-digit and a two- or three-digit number: a calculator task (a small model's mental
       answer is almost always wrong, while the python tool gets it right), for agents that must learn
       to use their tool
"""

from __future__ import annotations

import random

from astuner.task_reader.task import Task

NAMES = ["Tom", "Mia", "Ali", "Sara", "Ken", "Lena", "Omar", "Zoe", "Ivan", "Nora", "Raj", "Emma"]
THINGS = ["apples", "marbles", "books", "stickers", "pencils", "cookies", "coins", "shells", "cards", "eggs"]


def _problem(rng: random.Random, difficulty: int) -> tuple[str, int]:
    name, other = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)
    if difficulty == 6:
        a, b = rng.randint(12, 99), rng.randint(12, 999)
        return f"{name} packs {a} boxes with {b} {thing} in each box. How many {thing} does {name} pack?", a * b
    top = {1: 9, 2: 99, 3: 99, 4: 99, 5: 999}[difficulty]
    a = rng.randint(1, top)
    if difficulty == 1:
        b = rng.randint(1, 9)
        return f"{name} has {a} {thing}. {other} gives {name} {b} more. How many {thing} does {name} have now?", a + b
    if difficulty == 3 and rng.random() < 0.5:
        b, c = rng.randint(2, 9), rng.randint(2, 9)
        return f"{name} has {b} bags with {c} {thing} in each bag. How many {thing} does {name} have?", b * c
    b = rng.randint(1, top)
    steps = [(f"{other} gives {name} {b} more", b)]
    if rng.random() < 0.5 and a > 1:
        b = rng.randint(1, a - 1)
        steps = [(f"{name} gives {b} of them to {other}", -b)]
    if difficulty >= 4:
        for _ in range(rng.randint(1, 2) if difficulty == 5 else 1):
            c = rng.randint(1, top)
            steps.append((f"then finds {c} more", c))
    total = a + sum(delta for _, delta in steps)
    story = ", ".join(text for text, _ in steps)
    return f"{name} has {a} {thing}. {story[0].upper() + story[1:]}. How many {thing} does {name} have now?", total


def generate_tasks(split: str, count: int, seed: int, difficulty: int) -> list[Task]:
    """``count`` problems; the same (split, seed, difficulty) always gives the same tasks."""
    rng = random.Random(f"{seed}-{split}-{difficulty}")
    tasks = []
    for i in range(count):
        question, answer = _problem(rng, difficulty)
        tasks.append(
            Task(
                task_id=f"arith-{split}-{i}",
                main_query=question,
                env_type="arithmetic",
                metadata={"ground_truth": str(answer), "difficulty": difficulty},
            )
        )
    return tasks


class ArithmeticTaskReader:
    """Reads generated training and validation problems (disjoint seeds per split)."""

    def __init__(self, num_train: int, num_validation: int, seed: int, difficulty: int):
        self.num_train, self.num_validation, self.seed, self.difficulty = num_train, num_validation, seed, difficulty

    def get_training_tasks(self) -> list[Task]:
        return generate_tasks("train", self.num_train, self.seed, self.difficulty)

    def get_validation_tasks(self) -> list[Task]:
        return generate_tasks("validation", self.num_validation, self.seed, self.difficulty)
