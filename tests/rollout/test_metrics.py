"""Step metrics of how the agent acts: turns, tool calls, tool use and success with and without it."""

from __future__ import annotations

import math

from astuner.rollout.metrics import rollout_metrics, tool_use_metrics
from astuner.rollout.runner import Episode


def episode(i: int, calls: int, tools: int, success: bool, status: str = "ok") -> Episode:
    e = Episode(f"e{i}", "t", i, status, reward=1.0 if success else 0.0, is_success=success)
    e.metrics = {"calls": calls, "tool_calls": tools}
    return e


def test_tool_use_and_turns_per_step():
    episodes = [
        episode(0, calls=3, tools=2, success=True),
        episode(1, calls=2, tools=1, success=False),
        episode(2, calls=1, tools=0, success=False),
        episode(3, calls=1, tools=0, success=True),
        episode(4, calls=2, tools=1, success=False, status="failed"),  # counts in the per-episode means only
    ]
    m = tool_use_metrics(episodes)
    assert m["turns_per_episode"] == 9 / 5 and m["tool_calls_per_episode"] == 4 / 5
    assert m["tool_use_rate"] == 2 / 4
    assert (m["success_with_tool"], m["success_without_tool"]) == (0.5, 0.5)
    full = rollout_metrics(episodes, seconds=1.0)
    assert full["tool_calls"] == 4 and full["tool_use_rate"] == 0.5


def test_no_tool_use_leaves_its_success_undefined():
    m = tool_use_metrics([episode(0, calls=1, tools=0, success=True)])
    assert m["tool_use_rate"] == 0.0 and math.isnan(m["success_with_tool"]) and m["success_without_tool"] == 1.0
    assert all(math.isnan(v) for v in tool_use_metrics([]).values())


def test_tool_use_by_tool_name():
    """An agent with a working tool and an answer tool: the step says how many episodes did the work."""
    from astuner.context.types import LLMCall
    from astuner.rollout.metrics import tool_use_text
    from astuner.rollout.runner import tool_call_counts

    def call(*names: str) -> LLMCall:
        return LLMCall(0, [], [], [], "stop", tool_calls=len(names), tool_names=list(names))

    counted = [
        tool_call_counts([call("python"), call("answer")]),
        tool_call_counts([call("answer")]),
        tool_call_counts([call("python", "python"), call("answer")]),
        tool_call_counts([call()]),
    ]
    assert counted[2] == {"tool_calls/python": 2, "tool_calls/answer": 1} and counted[3] == {}
    episodes = [episode(i, calls=2, tools=sum(c.values()), success=i == 0) for i, c in enumerate(counted)]
    for e, c in zip(episodes, counted, strict=True):
        e.metrics.update(c)
    m = tool_use_metrics(episodes)
    assert (m["tool_use_rate"], m["tool_use_rate/python"], m["tool_use_rate/answer"]) == (3 / 4, 2 / 4, 3 / 4)
    assert tool_use_text(m) == "tool use 75% (answer 75%, python 50%)"
    assert tool_use_text(tool_use_metrics(episodes[1:2])) == "tool use 100%"  # one tool: no breakdown
