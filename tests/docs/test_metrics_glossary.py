"""docs/reference/metrics.md names every metric the debug backbone writes to metrics.jsonl, and no other."""

from __future__ import annotations

from tests.docs.code_keys import dict_keys, table_names
from tests.docs.conftest import DOCS

GLOSSARY = DOCS / "reference" / "metrics.md"

# Where metrics.jsonl's names are written: (file, functions). A new place that writes metrics goes here.
SOURCES = [
    ("astuner/records/experiment.py", ("log_metrics",)),
    ("astuner/rollout/metrics.py", ("rollout_metrics", "tool_use_metrics")),
    ("astuner/backbone/debug/run.py", ("_step", "_train_items", "_validate")),
    ("astuner/backbone/debug/trainer.py", ("update", "_step")),
    ("astuner/algo/policy_loss.py", ("ppo_clip_loss", "policy_loss_sum")),
    ("astuner/algo/dynamic_sampling.py", ("metrics",)),
    ("astuner/engine/weight_sync.py", ("push",)),
]


def written_metrics() -> set[str]:
    return set().union(*(dict_keys(path, *functions) for path, functions in SOURCES))


def test_every_metric_written_is_in_the_glossary_and_nothing_else():
    written, documented = written_metrics(), table_names(GLOSSARY)
    assert written - documented == set(), f"metrics without a line in {GLOSSARY.name}: {sorted(written - documented)}"
    assert documented - written == set(), (
        f"{GLOSSARY.name} documents metrics no code writes: {sorted(documented - written)}"
    )


def test_the_collector_sees_what_rollout_metrics_returns():
    """The source reading agrees with the function's real output, so a renamed key cannot hide from it."""
    from astuner.rollout.metrics import rollout_metrics

    assert set(rollout_metrics([], 1.0)) <= written_metrics()


def test_validation_lines_are_the_rollout_metrics_prefixed():
    text = GLOSSARY.read_text(encoding="utf-8")
    assert '"phase": "validation"' in text and "`val/`" in text
    assert dict_keys("astuner/backbone/debug/run.py", "_validate") == {"phase"}  # the rest is f"val/{k}"
