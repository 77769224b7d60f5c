"""verl's default (v1) trainer path: ``AgentLoopManagerTQ``/``AgentLoopWorkerTQ`` and TransferQueue.

Why a second test: only the v1 worker accepts a list of ``AgentLoopOutput`` (one per timeline), which
the adapter returns when merging leaves several. Real: verl's v1 agent-loop manager and workers, the
TransferQueue controller and storage actors, on local Ray; replaced: only the vLLM server.
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np

from tests.backbone.verl.conftest import REPO


def test_two_timelines_come_back_as_two_samples_each(local_ray, smollm2_dir, verl_experiment, tmp_path):
    # A model folder, not the tokenizer alone: verl's workers read its config.json and generation_config.json.
    import transfer_queue as tq
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.trainer.ppo.v1 import AgentLoopManagerTQ
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
    from verl.workers.rollout.llm_server import LLMServerClient
    from verl.workers.rollout.router import GlobalRequestLoadBalancer

    from astuner.config.load import load_config
    from astuner.task_reader import build_task_reader
    from tests.backbone.helpers import write_planned_inputs
    from tests.backbone.verl.token_server import TokenServer

    workflow = REPO / "tests" / "backbone" / "verl" / "two_timelines_workflow.py"
    overrides = [
        f"astuner.rollout.agentscope_workflow={workflow}->TwoTimelinesWorkflow",
        "astuner.rollout.multi_turn.max_sample_per_task=2",
        "astuner.rollout.multi_turn.max_steps=5",
        "+my_game.level=3",  # a section of the user's own reaches the workflow inside verl's worker
        "+actor_rollout_ref.rollout.agent.num_workers=1",
        "+transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    ]
    loaded = load_config(verl_experiment(model_path=str(smollm2_dir)), overrides, backbone="verl")
    reader = build_task_reader(loaded.astuner.task_reader)
    plan = write_planned_inputs(loaded, tmp_path / "records", reader.get_training_tasks(), [])
    config = OmegaConf.load(plan.config_path)
    config.transfer_queue.enable = True
    tq.init(config.transfer_queue)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(smollm2_dir))
        reply = tokenizer("\\boxed{2}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        server = local_ray.remote(TokenServer).remote([reply])
        balancer = local_ray.remote(GlobalRequestLoadBalancer).remote(servers={"stand-in": server})
        client = LLMServerClient(config, load_balancer_handle=balancer)
        manager = AgentLoopManagerTQ.create(config=config, llm_client=client)

        dataset = RLHFDataset(config.data.train_files, tokenizer, config.data)
        batch_dict = collate_fn([dataset[i] for i in range(len(dataset))])
        batch_dict["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(dataset))], dtype=object)
        batch = tu.get_tensordict(batch_dict)
        tu.assign_non_tensor_data(batch, "global_steps", 1)
        uids = list(batch["uid"])
        tags = [{"is_prompt": True, "status": "pending", "global_steps": 1} for _ in uids]
        tq.kv_batch_put(keys=uids, partition_id="train", tags=tags)
        manager.generate_sequences(batch)

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listing = tq.kv_list("train").get("train", {})
            if all(listing.get(u, {}).get("status") in ("finished", "failure") for u in uids):
                break
            time.sleep(0.5)
        statuses = {u: tq.kv_list("train").get("train", {}).get(u, {}).get("status") for u in uids}
        assert set(statuses.values()) == {"finished"}, statuses
        n = config.actor_rollout_ref.rollout.n
        keys = [f"{u}_{s}_{i}" for u in uids for s in range(n) for i in range(2)]
        listing = tq.kv_list("train").get("train", {})
        # verl's v1 trainer builds staleness metrics from these tags (np.array(..., dtype=int)); the
        # first GPU run failed on None here. The stand-in server reports weight version 7.
        assert {(listing[k]["min_global_steps"], listing[k]["max_global_steps"]) for k in keys} == {(7, 7)}
        out = tq.kv_batch_get(keys=keys, partition_id="train")
        assert len(out) == len(uids) * n * 2
        per_task = n * 2  # rows of one task: n repeats x 2 timelines
        for row in range(len(out)):
            assert int(out["response_mask"][row].sum()) == len(reply)  # each timeline is one sampled reply
            expected = 1.0 if row < per_task else 0.0  # "1+1" answered 2 (right); "2+2" answered 2 (wrong)
            assert float(out["rm_scores"][row].sum()) == expected
            assert float(out["rm_scores"][row][-1]) == expected  # verl puts the reward on the last token
        episodes = [
            json.loads(x) for p in (tmp_path / "records" / "trajectories").glob("verl_step_*") for x in p.open()
        ]
        assert len(episodes) == len(uids) * n
        assert {json.dumps(e["output_metadata"], sort_keys=True) for e in episodes} == {
            json.dumps({"my_game_level": 3, "max_steps": 5, "calls_left": 3}, sort_keys=True)
        }
    finally:
        tq.close()
