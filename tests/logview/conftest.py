"""An experiment folder written by astuner's own recorder (Experiment, write_step, save_tokenizer).

Token ids come from the real SmolLM2 tokenizer, so the viewer decodes real text. The folder holds:
- train step 1: a group of 3 ordinary episodes, a two-call episode merged into one sample (tool
  result masked between the turns, a drifted second call), an XSS probe, a failed episode, and a
  mad one;
- train step 2: 1000 episodes, one of them with a 10k-token sample (the "large step");
- validation steps 0 and 2, and metrics for all of them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from astuner.context.types import LLMCall, Sample
from astuner.records import open_experiment
from astuner.records.trajectories import write_step
from astuner.rollout.runner import Episode

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
BIG_TOKENS = 10_000


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def _episode(tok, eid: str, task: str, reward: float | None, adv: float | None, *, question: str, answer: str, **kw):
    prompt = _ids(tok, f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
    response = _ids(tok, answer + "<|im_end|>")
    logprobs = [-0.01 * (i % 7) - (3.0 if i % 11 == 5 else 0.0) for i in range(len(response))]
    t = time.time()
    call = LLMCall(
        index=0,
        prompt_ids=prompt,
        response_ids=response,
        logprobs=logprobs,
        finish_reason="stop",
        messages=[{"role": "user", "content": question}],
        response_text=answer,
        t_start=t,
        t_end=t + 0.8,
    )
    sample = Sample(prompt, response, [1] * len(response), logprobs, [0])
    return Episode(
        episode_id=eid,
        task_id=task,
        repeat_index=int(eid.rsplit("r", 1)[-1]) if eid[-1].isdigit() else 0,
        status="ok",
        reward=reward,
        is_success=bool(reward and reward >= 1.0),
        advantage=adv,
        calls=[call],
        samples=[sample],
        metrics={"seconds": 0.8, "calls": 1},
        **kw,
    )


def _two_call_episode(tok) -> Episode:
    """call 0 asks for a tool; the tool's output is context (mask 0); call 1 answers."""
    q = "What is 17 * 23?"
    p0 = _ids(tok, f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n")
    r0 = _ids(
        tok,
        '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(17*23)"}}\n</tool_call><|im_end|>',
    )
    ctx = _ids(tok, "\n<|im_start|>user\n<tool_response>\n391\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    r1 = _ids(tok, "The answer is \\boxed{391}.<|im_end|>")
    lp0, lp1 = [-0.05] * len(r0), [-2.5] * len(r1)
    t = time.time()
    messages = [
        {"role": "user", "content": q},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "function": {"name": "execute_python_code", "arguments": '{"code": "print(17*23)"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "name": "execute_python_code", "content": "391"},
    ]
    calls = [
        LLMCall(0, p0, r0, lp0, "stop", messages[:1], response_text="<tool_call>…</tool_call>", t_start=t, t_end=t + 1),
        LLMCall(
            1,
            p0 + r0 + ctx,
            r1,
            lp1,
            "stop",
            messages,
            response_text="The answer is \\boxed{391}.",
            spliced=1,
            drift=2,
            t_start=t + 1.5,
            t_end=t + 2,
        ),
    ]
    response = r0 + ctx + r1
    mask = [1] * len(r0) + [0] * len(ctx) + [1] * len(r1)
    sample = Sample(p0, response, mask, lp0 + [0.0] * len(ctx) + lp1, [0, 1])
    return Episode(
        "s1-tool-r0",
        "task-tool",
        0,
        "ok",
        reward=1.0,
        is_success=True,
        advantage=0.0,
        calls=calls,
        samples=[sample],
        metrics={"seconds": 2.0, "calls": 2, "drift": 2},
    )


def _step_metrics(reward: float, n: int) -> dict:
    return {
        "phase": "train",
        "episodes": n,
        "episodes_failed": 1,
        "episodes_timeout": 0,
        "reward_mean": reward,
        "success_rate": reward / 2,
        "madness_rate": 0.1,
        "zero_signal_groups": 1,
        "step_seconds": 12.5,
        "reward_std": math.nan,  # non-finite values are recorded as null and must not break the page
    }


@pytest.fixture(scope="session")
def records(tmp_path_factory, smollm2_tokenizer) -> Path:
    tok = smollm2_tokenizer
    root = tmp_path_factory.mktemp("records")
    exp = open_experiment(root, "viewer", resume=False)
    exp.write_config("astuner:\n  experiment_name: viewer\n  model:\n    path: builtin:smollm2-135m\n")
    exp.save_tokenizer(tok)
    step1 = [
        _episode(tok, f"s1-a-r{i}", "task-a", r, a, question="What is 2 + 3?", answer=ans)
        for i, (r, a, ans) in enumerate([(1.0, 1.15, "\\boxed{5}"), (0.0, -0.58, "6"), (0.0, -0.58, "It is 7.")])
    ]
    step1.append(_two_call_episode(tok))
    xss = _episode(tok, "s1-xss-r0", f"task-{XSS}", 0.0, None, question=XSS, answer=XSS)
    xss.calls[0].messages.append({"role": "tool", "name": XSS, "content": XSS})
    xss.error = f"ValueError: {XSS}"
    step1.append(xss)
    step1.append(
        Episode(
            "s1-fail-r0",
            "task-fail",
            0,
            "failed",
            error='Traceback (most recent call last):\n  File "wf.py", line 3\nRuntimeError: the tool server is down',
            metrics={"seconds": 0.1},
        )
    )
    step1.append(
        _episode(tok, "s1-mad-r0", "task-mad", 0.0, -0.1, question="Hi", answer="aaaa " * 20, madness=["nonsense"])
    )
    write_step(exp.trajectories_dir, 1, step1)

    step2 = [
        _episode(
            tok, f"s2-t{i // 8}-r{i % 8}", f"task-{i // 8:03d}", (i % 3) / 2, (i % 3) - 1.0, question="1+1?", answer="2"
        )
        for i in range(999)
    ]
    big = _episode(tok, "s2-big-r0", "task-big", 0.5, 0.3, question="Count.", answer="x")
    big.samples[0] = Sample(
        big.samples[0].prompt_ids,
        [(i % 500) + 300 for i in range(BIG_TOKENS)],
        [1] * BIG_TOKENS,
        [-0.1] * BIG_TOKENS,
        [0],
    )
    step2.append(big)
    write_step(exp.trajectories_dir, 2, step2)
    for s in (0, 2):
        val = [_episode(tok, f"v{s}-r0", "val-0", 1.0, None, question="3+3?", answer="\\boxed{6}")]
        write_step(exp.trajectories_dir, s, val, kind="val")
        exp.log_metrics(s, {"phase": "validation", "val/reward_mean": 0.25 * (s + 1), "val/success_rate": 0.5})
    exp.log_metrics(1, _step_metrics(0.4, len(step1)))
    exp.log_metrics(2, _step_metrics(0.6, len(step2)))
    exp.close()
    return exp.root


@pytest.fixture(scope="session")
def viewer_url(records):
    """The real viewer server on a free loopback port, serving ``records`` from a thread."""
    import threading

    from astuner.logview.server import make_server

    server = make_server(records)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()
