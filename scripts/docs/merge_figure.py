"""The picture of a merged timeline and its loss mask (``docs/merged_timeline.svg``).

Why generated, and by astuner's own merge: the figure shows three LLM calls of a ReAct episode and the
training samples that ``astuner.context.merge.merge_calls`` builds from them, so it shows what the
code does, not what someone once drew. Plain SVG text (no plotting library), so the output is the
same on every machine and ``tests/docs/test_generated_pages.py`` can compare it with the committed file.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from astuner.context.merge import merge_calls
from astuner.context.types import LLMCall

PAGE = Path("docs/merged_timeline.svg")

# Token texts; a token's id is its index here. Ids never matter to the merge, only equality does.
VOCAB = [
    "<sys>", "Use python.", "<user>", "3*4+5?",  # the agent's first prompt
    "<tool_call>", "print(3*4+5)", "</tool_call>",  # its first reply: a tool call
    "<tool>", "17", "</tool>",  # the tool's result, inserted by the agent
    "\\boxed{17}", "<eos>",  # its final answer
    "Summarise.",  # a prompt the agent renders afresh: a second timeline
]  # fmt: skip
COLORS = {"prompt": "#d9d9d9", "sampled": "#8fd19e", "context": "#9ec5fe"}
CELL_H, GAP, LEFT, CHAR_W, ROW = 24, 4, 8.0, 7.2, 46


def example_calls() -> list[LLMCall]:
    """Call 1 extends call 0 (its prompt is call 0's prompt, reply and the tool result); call 2 does not."""
    ids = {text: i for i, text in enumerate(VOCAB)}

    def tok(*texts: str) -> list[int]:
        return [ids[t] for t in texts]

    first = tok("<sys>", "Use python.", "<user>", "3*4+5?")
    reply = tok("<tool_call>", "print(3*4+5)", "</tool_call>")
    tool = tok("<tool>", "17", "</tool>")
    return [
        LLMCall(0, first, reply, [-0.4, -1.2, -0.1], "stop"),
        LLMCall(1, first + reply + tool, tok("\\boxed{17}", "<eos>"), [-0.9, -0.05], "stop"),
        LLMCall(2, tok("<sys>", "Summarise.", "<user>", "3*4+5?", "17"), tok("17", "<eos>"), [-0.3, -0.02], "stop"),
    ]


def _cell_w(token: int) -> float:
    return max(30.0, CHAR_W * len(VOCAB[token]) + 12)


def _row(y: float, label: str, cells: list[tuple[int, str]], mask: list[int] | None = None) -> list[str]:
    """A label, then a row of token cells under it; with ``mask``, the response cells get their 0/1 underneath."""
    out = [f'<text x="{LEFT}" y="{y}" class="label">{escape(label)}</text>']
    x, y = LEFT, y + 6
    for i, (token, kind) in enumerate(cells):
        w = _cell_w(token)
        out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{CELL_H}" fill="{COLORS[kind]}" rx="3"/>')
        out.append(f'<text x="{x + w / 2:.1f}" y="{y + 16}" class="tok">{escape(VOCAB[token])}</text>')
        if mask is not None and kind != "prompt":
            out.append(f'<text x="{x + w / 2:.1f}" y="{y + CELL_H + 13}" class="mask">{mask[i]}</text>')
        x += w + GAP
    return out


def render() -> str:
    """The SVG text of the figure."""
    calls = example_calls()
    result = merge_calls(calls, max_prompt_length=100, max_response_length=100, max_samples=4)
    body: list[str] = ['<text x="8" y="18" class="head">LLM calls, as the engine saw them</text>']
    y = 42.0
    for c in calls:
        cells = [(t, "prompt") for t in c.prompt_ids] + [(t, "sampled") for t in c.response_ids]
        body += _row(y, f"call {c.index}", cells)
        y += ROW
    y += 8
    body.append(f'<text x="8" y="{y}" class="head">Training samples after merging (loss mask under each token)</text>')
    y += 24
    for n, s in enumerate(result.samples):
        kinds = ["sampled" if m else "context" for m in s.loss_mask]
        cells = [(t, "prompt") for t in s.prompt_ids] + list(zip(s.response_ids, kinds, strict=True))
        mask = [0] * len(s.prompt_ids) + s.loss_mask
        calls_text = ", ".join(map(str, s.call_indices))
        body += _row(y, f"sample {n} (calls {calls_text})", cells, mask)
        y += ROW + 14
    legend = [("prompt", "prompt (not trained)"), ("sampled", "sampled by the policy: mask 1"),
              ("context", "inserted context (tool result): mask 0")]  # fmt: skip
    x = 8.0
    for kind, text in legend:
        body.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{COLORS[kind]}" rx="2"/>')
        body.append(f'<text x="{x + 20}" y="{y + 12}" class="legend">{escape(text)}</text>')
        x += 20 + CHAR_W * len(text) + 24
    width = max(x, LEFT + max(sum(_cell_w(t) + GAP for t in c.prompt_ids + c.response_ids) for c in calls)) + 8
    height = y + 24
    style = (
        "text{font-family:monospace;font-size:12px;fill:#222}.tok{text-anchor:middle}"
        ".mask{text-anchor:middle;font-size:11px;fill:#555}.head{font-weight:bold;font-family:sans-serif}"
        ".label,.legend{font-family:sans-serif}"
    )
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img">',
            "<title>Three LLM calls of an episode merged into two training samples, with their loss mask</title>",
            f"<style>{style}</style>",
            '<rect width="100%" height="100%" fill="#ffffff"/>',
            *body,
            "</svg>",
        ]
    )
