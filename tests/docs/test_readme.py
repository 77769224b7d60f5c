"""The README stays a newcomer's page: short, its links alive, its example the tested tutorial's code."""

from __future__ import annotations

import re

from tests.conftest import REPO
from tests.docs.test_code_blocks import code_blocks

README = REPO / "README.md"
LIMIT = 8 * 1024


def test_the_readme_is_under_8_kb():
    size = len(README.read_bytes())
    assert size < LIMIT, f"README.md is {size} bytes; move detail to a page of docs/ and link it"


def test_every_relative_link_of_the_readme_exists():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert local, "the README links into the docs"
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_two_setup_commands_stay():
    text = README.read_text(encoding="utf-8")
    for script in ("scripts/quickstart.sh", "scripts/test.sh"):
        assert script in text and (REPO / script).is_file()


def test_the_python_example_is_an_excerpt_of_the_tutorial():
    """Each run of lines between '...' lines appears, verbatim and in order, in the tested workflow.py."""
    source = (REPO / "tutorial" / "example_math_agent" / "workflow.py").read_text(encoding="utf-8").splitlines()
    blocks = [b for b in code_blocks(README) if b.language == "python"]
    assert blocks, "the README shows an example"
    raw = README.read_text(encoding="utf-8").split("```python\n", 1)[1].split("\n```", 1)[0].splitlines()
    runs: list[list[str]] = [[]]
    for line in raw:
        if line.strip() == "...":
            runs.append([])
        else:
            runs[-1].append(line)
    position = 0
    for run in filter(None, runs):
        found = next((i for i in range(position, len(source)) if source[i : i + len(run)] == run), None)
        assert found is not None, f"not in workflow.py (in this order): {run[0]!r} ..."
        position = found + len(run)
