"""Aggregate a batch of episodes into step metrics (for metrics.jsonl and the console)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from astuner.rollout.runner import Episode


def tool_use_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """How the agent acts: LLM calls (turns) and parsed tool calls per episode, the share of finished
    episodes that called a tool, and success with and without one (NaN where no episode qualifies).

    Why: reward alone cannot tell an agent that learned to use its tool from one that learned to
    answer in one guess; these can (the main job's first versions did the latter).
    """
    ok = [e for e in episodes if e.status == "ok"]
    used = [e for e in ok if e.metrics.get("tool_calls", 0) > 0]
    unused = [e for e in ok if e.metrics.get("tool_calls", 0) == 0]
    rate = lambda es: statistics.fmean(bool(e.is_success) for e in es) if es else float("nan")  # noqa: E731
    per = lambda key: statistics.fmean(e.metrics.get(key, 0) for e in episodes) if episodes else float("nan")  # noqa: E731
    metrics = {
        "turns_per_episode": per("calls"),
        "tool_calls_per_episode": per("tool_calls"),
        "tool_use_rate": len(used) / len(ok) if ok else float("nan"),
        "success_with_tool": rate(used),
        "success_without_tool": rate(unused),
    }
    for tool in sorted(
        {k.removeprefix("tool_calls/") for e in episodes for k in e.metrics if k.startswith("tool_calls/")}
    ):
        called = [e for e in ok if e.metrics.get(f"tool_calls/{tool}", 0) > 0]
        metrics[f"tool_use_rate/{tool}"] = len(called) / len(ok) if ok else float("nan")
    return metrics


def tool_use_text(metrics: dict[str, float]) -> str:
    """``tool use 100% (execute_python_code 94%, generate_response 100%)``: the console's view of tool use, by
    tool once the agent has used more than one."""
    by_tool = {k.removeprefix("tool_use_rate/"): v for k, v in metrics.items() if k.startswith("tool_use_rate/")}
    detail = ", ".join(f"{tool} {v:.0%}" for tool, v in sorted(by_tool.items())) if len(by_tool) > 1 else ""
    return f"tool use {metrics['tool_use_rate']:.0%}" + (f" ({detail})" if detail else "")


def rollout_metrics(episodes: Sequence[Episode], seconds: float) -> dict[str, float]:
    ok = [e for e in episodes if e.status == "ok"]
    rewards = [e.reward for e in ok if e.reward is not None]
    generated = sum(e.metrics.get("generated_tokens", 0) for e in episodes)
    total = lambda key: sum(e.metrics.get(key, 0) for e in episodes)  # noqa: E731
    return {
        "episodes": len(episodes),
        "episodes_failed": sum(e.status == "failed" for e in episodes),
        "episodes_timeout": sum(e.status == "timeout" for e in episodes),
        "reward_mean": statistics.fmean(rewards) if rewards else float("nan"),
        "reward_std": statistics.pstdev(rewards) if len(rewards) > 1 else 0.0,
        "success_rate": statistics.fmean(bool(e.is_success) for e in ok) if ok else float("nan"),
        "madness_rate": sum(bool(e.madness) for e in ok) / len(ok) if ok else float("nan"),
        "context_overflow": sum(e.context_overflow for e in episodes),
        "calls": total("calls"),
        "samples": total("samples"),
        "samples_dropped_by_cap": total("samples_dropped_by_cap"),
        "samples_dropped_prompt_too_long": total("samples_dropped_prompt_too_long"),
        "tokens_merged": total("tokens_merged"),
        "tokens_unmerged": total("tokens_unmerged"),
        "drift": total("drift"),
        "tool_call_parse_failures": total("tool_call_parse_failures"),
        "tool_calls": total("tool_calls"),
        **tool_use_metrics(episodes),
        "gateway_ignored_params": total("gateway_ignored_params"),
        "generated_tokens": generated,
        "generated_tokens_per_s": generated / seconds if seconds > 0 else 0.0,
        "rollout_seconds": seconds,
    }
