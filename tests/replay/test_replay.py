"""Record & replay: a recorded step re-runs identically with no engine, and divergence is reported
with the call and token where it happened; from Python and from the CLI."""

from __future__ import annotations

import asyncio
import json

import pytest

from astuner.cli import main
from astuner.config import load_config
from astuner.records.trajectories import write_step
from astuner.replay import replay_step
from astuner.rollout.build import build_runner
from tests.conftest import ScriptedEngine
from tests.gateway.conftest import CALL

# a two-call workflow: ModelTuner first, then the same episode through the OpenAI SDK
WORKFLOW = """
import openai
from astuner import Workflow, WorkflowOutput

TOOLS = [{"type": "function", "function": {"name": "execute_python_code", "description": "Run code.",
          "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}]

class TwoCalls(Workflow):
    async def execute(self, workflow_task, model_tuner):
        messages = [{"role": "user", "content": workflow_task.task.main_query}]
        first = await model_tuner(messages, tools=TOOLS)
        use = [b for b in first.content if b["type"] == "tool_use"][0]
        messages.append({"role": "assistant", "content": "", "tool_calls": [{"id": use["id"], "type": "function",
                         "function": {"name": use["name"], "arguments": __import__("json").dumps(use["input"])}}]})
        messages.append({"role": "tool", "tool_call_id": use["id"], "content": "2"})
        base_url, api_key = model_tuner.openai_endpoint()
        async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
            r = await client.chat.completions.create(model="policy", messages=messages, tools=TOOLS)
        return WorkflowOutput(metadata={"final_answer": r.choices[0].message.content})
"""


@pytest.fixture
def recorded(tmp_path, minimal_experiment, smollm2_tokenizer):
    """A config and the step file a (scripted) run of it recorded, in an experiment folder with its tokenizer."""
    import dataclasses

    from astuner.task_reader import build_task_reader

    module = f"two_calls_{abs(hash(str(tmp_path)))}"  # a process imports each user module name once
    (tmp_path / f"{module}.py").write_text(WORKFLOW)
    (tmp_path / "tasks.jsonl").write_text(
        "".join(json.dumps({"question": f"{i}+1?", "answer": f"#### {i + 1}"}) + "\n" for i in range(2))
    )
    conf = minimal_experiment(
        {
            "astuner": {
                "rollout": {"agentscope_workflow": f"{module}->TwoCalls", "num_repeat": 2},
                "task_judge": {"judge_protocol": "astuner.task_judge.math_answer_as_judge->MathAnswerAsJudge"},
            }
        }
    )
    loaded = load_config(conf, cwd=tmp_path)
    engine = ScriptedEngine(smollm2_tokenizer, [CALL, "So \\boxed{2}.", CALL, "It is 3."])
    runner = build_runner(loaded.astuner, engine, smollm2_tokenizer, tmp_path, tmp_path, with_env=False)
    runner.settings = dataclasses.replace(runner.settings, max_env_worker=1)
    tasks = build_task_reader(loaded.astuner.task_reader).get_training_tasks()
    episodes = asyncio.run(runner.run(tasks, step=3))
    exp = tmp_path / "exp"
    (exp / "trajectories").mkdir(parents=True)
    smollm2_tokenizer.save_pretrained(str(exp / "tokenizer"))
    return conf, loaded, write_step(exp / "trajectories", 3, episodes), episodes


def test_a_recorded_step_replays_identically(recorded):
    conf, loaded, path, episodes = recorded
    assert [e.status for e in episodes] == ["ok"] * 4 and {e.reward for e in episodes} == {0.0, 1.0}
    # --8<-- [start:replay]
    report = replay_step(loaded, path)
    assert report.identical, report.lines()
    # --8<-- [end:replay]
    assert [e.replayed.reward for e in report.episodes] == [e.reward for e in episodes]
    assert [e.replayed.samples for e in report.episodes] == [e.samples for e in episodes]
    assert report.lines() == [f"replayed 4 episode(s) of {path.name}: 4 identical to the recording"]


def test_divergence_names_the_episode_call_and_token(recorded):
    conf, loaded, path, episodes = recorded
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    prompt = rows[1]["calls"][1]["prompt_ids"]
    prompt[7] = prompt[7] + 1  # the recording's second prompt of episode 1 now differs at token 7
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = replay_step(loaded, path)
    assert not report.identical
    (bad,) = [e for e in report.episodes if e.differences]
    assert bad.episode_id == rows[1]["episode_id"] and bad.replayed.status == "failed"
    assert f"episode {bad.episode_id} diverged at call 1, token 7" in bad.replayed.error  # through the gateway (502)


def test_cli_replays_and_exits_by_the_result(recorded, tmp_path, monkeypatch, capsys):
    conf, loaded, path, _ = recorded
    monkeypatch.chdir(tmp_path)
    assert main(["--conf", str(conf), "--backbone=debug", f"astuner.debug.replay={path}"]) == 0
    assert not (tmp_path / "launcher_record").exists()  # a replay writes no records
    missing = main(["--conf", str(conf), "--backbone=debug", "astuner.debug.replay=nope/step_000001.jsonl"])
    assert missing == 2 and "not a step record" in capsys.readouterr().err
