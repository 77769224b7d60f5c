"""Rollouts: running episodes of a workflow against an engine, with madness checks and judging."""
