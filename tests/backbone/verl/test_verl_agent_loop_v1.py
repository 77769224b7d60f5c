"""verl's default (v1) trainer path: ``AgentLoopManagerTQ``/``AgentLoopWorkerTQ`` and TransferQueue.

Why a second test: only the v1 worker accepts a list of ``AgentLoopOutput`` (one per timeline), which
the adapter returns when merging leaves several. Real: verl's v1 agent-loop manager and workers, the
TransferQueue controller and storage actors, on local Ray; replaced: only the vLLM server.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid

import numpy as np
import pytest

from tests.backbone.verl.conftest import REPO


@contextlib.contextmanager
def _generated(local_ray, tokenizer_dir, experiment, records, workflow: str, overrides: list[str], replies: list[str]):
    """verl's v1 agent-loop manager runs one training batch of ``workflow`` into TransferQueue; yields
    (config, uids, the replies' token ids) once every prompt's sessions are terminal."""
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

    overrides = [
        f"astuner.rollout.agentscope_workflow={workflow}",
        *overrides,
        "+actor_rollout_ref.rollout.agent.num_workers=1",
        "+transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    ]
    loaded = load_config(experiment, overrides, backbone="verl")
    reader = build_task_reader(loaded.astuner.task_reader)
    plan = write_planned_inputs(loaded, records, reader.get_training_tasks(), [])
    config = OmegaConf.load(plan.config_path)
    config.transfer_queue.enable = True
    tq.init(config.transfer_queue)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        ids = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in replies]
        server = local_ray.remote(TokenServer).remote(ids)
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
        yield config, uids, ids
    finally:
        tq.close()


@pytest.fixture
def v1_batch(local_ray, smollm2_dir, verl_experiment, tmp_path):
    """``run(workflow, overrides, replies)``: ``_generated`` for the math-agent experiment and the embedded model.

    A model folder, not the tokenizer alone: verl's workers read its config.json and generation_config.json.
    """

    def run(workflow: str, overrides: list[str], replies: list[str]):
        experiment = verl_experiment(model_path=str(smollm2_dir))
        return _generated(local_ray, smollm2_dir, experiment, tmp_path / "records", workflow, overrides, replies)

    return run


def test_two_timelines_come_back_as_two_samples_each(v1_batch, tmp_path):
    import transfer_queue as tq

    workflow = REPO / "tests" / "backbone" / "verl" / "two_timelines_workflow.py"
    many = [
        "astuner.rollout.multi_turn.max_sample_per_task=2",
        "astuner.rollout.multi_turn.max_steps=5",
        "+my_game.level=3",  # a section of the user's own reaches the workflow inside verl's worker
    ]
    run = v1_batch(f"{workflow}->TwoTimelinesWorkflow", many, ["\\boxed{2}"])
    with run as (config, uids, replies):
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
            assert int(out["response_mask"][row].sum()) == len(replies[0])  # each timeline is one sampled reply
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


def test_a_failed_episode_leaves_its_group_on_verls_v1_path(v1_batch):
    """The adapter returns no output for a failed episode; verl's v1 worker stores none, its replay buffer
    samples the smaller groups, pads the batch with untrained rows, and its advantage step gives the
    members exactly the debug backbone's GRPO advantages (rewards 1, 0 -> +-1/sqrt(2); a failure counted
    as reward 0 would have given 1.1547 and -0.5774)."""
    import transfer_queue as tq
    from verl.protocol import DataProto
    from verl.trainer.ppo.padding_utils import upsample_batch_to_divisible_size
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    workflow = REPO / "tests" / "backbone" / "verl" / "one_failure_workflow.py"
    run = v1_batch(f"{workflow}->FailSecondRepeat", ["astuner.rollout.num_repeat=3"], ["\\boxed{2}", "\\boxed{4}"])
    with run as (config, uids, _):
        listing = tq.kv_list("train").get("train", {})
        assert {listing[u]["status"] for u in uids} == {"finished"}  # the episode failed, the agent loop did not
        assert sorted(k.split("_", 1)[1] for k in listing if "_" in k) == ["0_0", "0_0", "2_0", "2_0"]
        buffer = ReplayBuffer(
            trainer_mode="sync",
            trainer_config={},
            max_off_policy_threshold=None,
            max_off_policy_strategy="drop",
            sampler_kwargs={},
            poll_interval=0.1,
            refill_fn=lambda k: None,
            train_batch_size=2,
            gen_batch_size=2,
        )
        batch, _ = buffer.sample(global_steps=1, partition_id="train", batch_size=len(uids))
        multiple = config.actor_rollout_ref.actor.ppo_mini_batch_size * config.actor_rollout_ref.rollout.n
        batch = upsample_batch_to_divisible_size(batch, multiple, eos_token_id=2)  # as the trainer's _balance_batch
        assert len(batch) == multiple == 6  # 4 members + 2 untrained padding rows: still one optimizer step
        # what the trainer's _compute_advantage reads and calls
        fields = tq.kv_batch_get(
            keys=batch.keys, partition_id="train", select_fields=["uid", "response_mask", "rm_scores"]
        )
        data = DataProto(batch=fields.to_padded_tensor())
        data.batch["token_level_rewards"] = data.batch["rm_scores"]
        data.non_tensor_batch["uid"] = np.array(data.batch.pop("uid").tolist(), dtype=object)
        data = compute_advantage_for_multi_trajectories(
            data, batch_keys=batch.keys, adv_estimator="grpo", num_repeat=3, norm_adv_by_std_in_grpo=True
        )
        mask, adv = data.batch["response_mask"], data.batch["advantages"]
        real = [i for i, tag in enumerate(batch.tags) if not tag.get("is_padding")]
        assert len(real) == 4 and all(int(mask[i].sum()) == 0 for i in range(6) if i not in real)
        scores = sorted(round(float(adv[i][mask[i].bool()][0]), 4) for i in real)
        assert scores == [-0.7071, -0.7071, 0.7071, 0.7071]
