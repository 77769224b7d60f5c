"""Token-exact records of LLM calls and their merge into training samples."""

from astuner.context.merge import MergeResult, build_timelines, merge_calls
from astuner.context.types import LLMCall, Sample

__all__ = ["LLMCall", "MergeResult", "Sample", "build_timelines", "merge_calls"]
