"""Every config in the bad-config corpus gets a one-line error naming file, key and fix, exit 2."""

from __future__ import annotations

import pytest

from tests.config.bad_configs import CASES, check


def test_the_corpus_is_large_and_unique():
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config_is_reported_in_one_line(case, tmp_path):
    verdict = check(case, tmp_path)
    assert verdict.ok, f"{verdict.why}\n{verdict.stderr}"
