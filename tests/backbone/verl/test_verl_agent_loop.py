"""The adapter inside verl's real agent-loop machinery, on a local Ray cluster, on CPU.

Real: verl's ``RLHFDataset`` reading astuner's parquet rows, ``GlobalRequestLoadBalancer``,
``LLMServerClient``, ``AgentLoopManager`` and its ``AgentLoopWorker`` actors (which instantiate
``AstunerAgentLoop`` from the generated agent-loop YAML), verl's batch padding, and verl's GRPO
advantage (``core_algos.compute_grpo_outcome_advantage``). Replaced: only the vLLM server, by
``TokenServer`` (same ``generate`` call). The workflow is the tutorial's math agent (ReActAgent),
judged by ``MathAnswerAsJudge``, through astuner's unchanged rollout, recording and merging code,
and an OpenAI SDK agent, whose client reaches the gateway the worker actor starts.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

N_REPEAT = 2
REPO = Path(__file__).resolve().parents[3]
# an OpenAI SDK agent: its client reaches the gateway that the AgentLoopWorker actor starts for it (not the
# SDK tutorial: its forced first tool call needs constrained decoding, which verl's CPU env has no vllm for)
SDK_WORKFLOW = f"{REPO / 'tests' / 'gateway' / 'sdk_loop_workflow.py'}->SdkLoop"


def _batch(config, tokenizer):
    from verl.protocol import DataProto
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    dataset = RLHFDataset(config.data.train_files, tokenizer, config.data)
    batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    return batch.repeat(repeat_times=config.actor_rollout_ref.rollout.n, interleave=True)


@pytest.mark.parametrize("workflow", [None, SDK_WORKFLOW], ids=["agentscope", "openai_sdk"])
def test_episodes_come_back_as_verl_batch(local_ray, smollm2_dir, verl_experiment, tmp_path, workflow):
    # A model folder, not the tokenizer alone: verl's workers read its config.json and generation_config.json.
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop import AgentLoopManager
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage
    from verl.workers.rollout.llm_server import LLMServerClient
    from verl.workers.rollout.router import GlobalRequestLoadBalancer

    from astuner.config.load import load_config
    from astuner.task_reader import build_task_reader
    from tests.backbone.helpers import write_planned_inputs
    from tests.backbone.verl.token_server import TokenServer

    overrides = ["+actor_rollout_ref.rollout.agent.num_workers=1"]
    overrides += [f"astuner.rollout.agentscope_workflow={workflow}"] if workflow else []
    loaded = load_config(verl_experiment(model_path=str(smollm2_dir)), overrides, backbone="verl")
    reader = build_task_reader(loaded.astuner.task_reader)
    records = tmp_path / "records"
    plan = write_planned_inputs(loaded, records, reader.get_training_tasks(), reader.get_validation_tasks())
    config = OmegaConf.load(plan.config_path)
    # verl's AgentLoopWorker (the v1 worker's base class) through the legacy manager, which hands the batch
    # back as a DataProto to read here; astuner runs the v1 trainer (config.algorithm_issues), whose
    # TransferQueue path test_verl_agent_loop_v1.py covers. All episodes here end ok: one output each.
    config.trainer.use_v1 = False

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_dir))
    # The first request for a prompt answers 2, the second 4: each task's group gets one right, one wrong.
    replies = [tokenizer(f"The answer is \\boxed{{{n}}}.", add_special_tokens=False)["input_ids"] for n in (2, 4)]
    replies = [ids + [tokenizer.eos_token_id] for ids in replies]
    server = local_ray.remote(TokenServer).remote(replies)
    balancer = local_ray.remote(GlobalRequestLoadBalancer).remote(servers={"stand-in": server})
    manager = AgentLoopManager.create(config=config, llm_client=LLMServerClient(config, load_balancer_handle=balancer))

    batch = _batch(config, tokenizer)
    out = manager.generate_sequences(batch)

    assert len(out) == 2 * N_REPEAT
    b, uid = out.batch, out.non_tensor_batch["uid"]
    mask, logprobs, scores = b["response_mask"], b["rollout_log_probs"], b["rm_scores"]
    reply_len = {len(r) for r in replies}
    for row in range(len(out)):
        n = int(mask[row].sum())
        assert n in reply_len  # every sampled token (reply + EOS) is trained, nothing else
        assert torch.allclose(logprobs[row, :n], torch.tensor([-0.01 * (i + 1) for i in range(n)]))
        assert torch.all(logprobs[row, n:] == 0)
        assert float(scores[row].sum()) in (0.0, 1.0)
        assert scores[row].nonzero().flatten().tolist() in ([], [n - 1])  # reward on the last response token
        assert out.non_tensor_batch["astuner_status"][row] == "ok"
    rewards = scores.sum(-1)
    for group in set(uid):
        assert sorted(rewards[uid == group].tolist()) == [0.0, 1.0]

    adv, _ = compute_grpo_outcome_advantage(token_level_rewards=scores, response_mask=mask, index=uid)
    for row in range(len(out)):
        first = float(adv[row, 0])
        assert (first > 0) == (rewards[row] > 0) and abs(abs(first) - 0.7071) < 1e-3

    requests = local_ray.get(server.get_requests.remote())
    assert len(requests) == 2 * N_REPEAT and all(r["logprobs"] for r in requests)
    assert all(r["max_tokens"] <= 64 for r in requests)  # rollout.max_response_length_in_one_turn
    lines = [json.loads(x) for p in (records / "trajectories").glob("verl_step_000007.*.jsonl") for x in p.open()]
    assert len(lines) == 2 * N_REPEAT and {e["status"] for e in lines} == {"ok"}
    assert sorted(e["reward"] for e in lines) == [0.0, 0.0, 1.0, 1.0]
    first_roles = {e["calls"][0]["messages"][0]["role"] for e in lines}
    assert first_roles == ({"user"} if workflow else {"system"})  # the SDK agent has no system prompt: it ran
    assert Path(config.actor_rollout_ref.rollout.agent.agent_loop_config_path).is_file()
