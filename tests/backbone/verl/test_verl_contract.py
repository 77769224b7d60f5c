"""The contract with verl 0.9.1: every verl symbol, signature, field and config key astuner uses.

Why: the predecessor broke on every verl release. When verl is upgraded, this file is where it
fails first and says exactly what moved; fix ``astuner/backbone/verl/`` and this list together.
Used by astuner/backbone/verl/: agent_loop.py (AgentLoopBase, AgentLoopOutput, AgentLoopMetrics,
LLMServerClient.generate -> TokenOutput), run.py (``python -m verl.trainer.main_ppo``, Hydra main),
config.py (the ppo_trainer keys below), tasks.py (RLHFDataset's row contract). The tests also use
AgentLoopManager, GlobalRequestLoadBalancer, RLHFDataset/collate_fn, DataProto and GRPO advantages.
The algorithm rows of ``astuner/algo/semantics.py`` rest on the verl behaviour pinned at the end.
"""

from __future__ import annotations

import inspect

from astuner.backbone.verl.config import TO_VERL, compose_ppo_trainer, wiring


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_verl_version():
    import verl

    assert verl.__version__ == "0.9.1", "astuner's adapter is written against verl 0.9.1; re-check this file"


def test_agent_loop_base():
    from verl.experimental.agent_loop import AgentLoopBase

    assert _params(AgentLoopBase.__init__) == [
        "self",
        "trainer_config",
        "server_manager",
        "tokenizer",
        "processor",
        "dataset_cls",
        "data_config",
        "hf_model_type",
        "kwargs",
    ]
    assert _params(AgentLoopBase.run) == ["self", "sampling_params", "kwargs"]
    assert inspect.iscoroutinefunction(AgentLoopBase.run)
    src = inspect.getsource(AgentLoopBase.__init__)  # attributes the adapter reads
    assert "self.server_manager = server_manager" in src and "self.tokenizer = tokenizer" in src


def test_agent_loop_output_fields():
    from verl.experimental.agent_loop import AgentLoopOutput
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics

    fields = AgentLoopOutput.model_fields
    for name in ("prompt_ids", "response_ids", "response_mask", "response_logprobs", "reward_score", "num_turns"):
        assert name in fields, name
    assert fields["metrics"].is_required() and fields["metrics"].annotation is AgentLoopMetrics
    assert "extra_fields" in fields and "generate_sequences" in AgentLoopMetrics.model_fields


def test_server_manager_generate():
    from verl.workers.rollout.llm_server import LLMServerClient
    from verl.workers.rollout.replica import TokenOutput

    sig = inspect.signature(LLMServerClient.generate)
    assert list(sig.parameters)[:4] == ["self", "request_id", "prompt_ids", "sampling_params"]
    assert sig.parameters["prompt_ids"].kind is inspect.Parameter.KEYWORD_ONLY
    assert {"token_ids", "log_probs", "stop_reason", "extra_fields"} <= set(TokenOutput.model_fields)


def test_agent_loop_registry_via_config_path():
    """The worker loads ``agent_loop_config_path`` entries by ``name`` and instantiates ``_target_`` with our kwargs."""
    from verl.experimental.agent_loop import AgentLoopWorker

    src = inspect.getsource(AgentLoopWorker)
    assert "agent_loop_config_path" in src and "_agent_loop_registry[agent_loop_config.name] = agent_loop_config" in src
    assert "hydra.utils.instantiate(" in src and "server_manager=self.llm_client" in src


def test_logger_environment():
    """verl's file and TensorBoard loggers take their paths from these variables (set in the job's runtime env)."""
    from verl.utils import tracking

    src = inspect.getsource(tracking)
    assert 'os.getenv("VERL_FILE_LOGGER_PATH", None)' in src and 'os.environ.get("TENSORBOARD_DIR"' in src


def test_trainer_entry_point():
    from verl.trainer import main_ppo

    assert _params(main_ppo.run_ppo) == ["config", "task_runner_class"]
    assert callable(main_ppo.main)  # `python -m verl.trainer.main_ppo --config-path --config-name`


def test_grpo_advantage():
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    assert _params(compute_grpo_outcome_advantage)[:5] == [
        "token_level_rewards",
        "response_mask",
        "index",
        "epsilon",
        "norm_adv_by_std_in_grpo",
    ]


def test_every_translated_key_exists_in_ppo_trainer(tmp_path):
    """astuner writes only keys verl already has (a renamed verl key would otherwise be silently added)."""
    from omegaconf import OmegaConf

    base = compose_ppo_trainer()
    keys = [v for targets in TO_VERL.values() for v, _ in targets] + list(wiring(tmp_path)) + ["trainer.use_v1"]
    keys = [k.split(".env_vars.")[0] for k in keys]  # env_vars entries are ours to add
    # hydra.* configures the @hydra.main of verl's main_ppo, not ppo_trainer (test_verl_launch: it takes effect)
    keys = [k for k in keys if not k.startswith("hydra.")]
    missing = [k for k in keys if OmegaConf.select(base, k, default="<missing>") == "<missing>"]
    assert not missing, f"verl's ppo_trainer has no {missing}"


# ---- the algorithm (astuner/algo/semantics.py; test_verl_algorithm_parity.py calls these) -------------


def test_loss_functions():
    from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn, kl_penalty_forward
    from verl.workers.utils.losses import ppo_loss

    assert _params(ppo_loss) == ["config", "model_output", "data", "dp_group"]
    assert get_policy_loss_fn("vanilla").__name__ == "compute_policy_loss_vanilla"
    assert _params(agg_loss)[:3] == ["loss_mat", "loss_mask", "loss_agg_mode"]
    src = inspect.getsource(kl_penalty_forward)  # k3 with both clamps, as astuner.algo.kl_low_var
    assert "torch.clamp(kl, min=-20, max=20)" in src and "torch.clamp(kld, min=-10, max=10)" in src
    src = inspect.getsource(ppo_loss)  # token mean over the mini-batch's tokens, KL aggregated the same way
    assert 'config.global_batch_info["batch_num_tokens"] = data["batch_num_tokens"]' in src
    assert "policy_loss += kl_loss * config.kl_loss_coef" in src


def test_v1_trainer_steps_and_advantages():
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories
    from verl.utils.config import omega_conf_to_dataclass

    assert callable(omega_conf_to_dataclass)
    params = _params(compute_advantage_for_multi_trajectories)
    assert params[:3] == ["data", "batch_keys", "adv_estimator"] and "norm_adv_by_std_in_grpo" in params
    src = inspect.getsource(PPOTrainer._update_actor)  # one optimizer step per ppo_mini_batch_size x n samples
    assert "ppo_mini_batch_size * self.config.actor_rollout_ref.rollout.n" in src
    src = inspect.getsource(PPOTrainer._compute_old_log_prob)  # bypass: the ratio is against the engine's logprobs
    assert 'data["old_log_probs"] = data.pop("rollout_log_probs")' in src
    src = inspect.getsource(PPOTrainer._compute_ref_log_prob)  # logprobs at the sampling temperature
    assert '"temperature": self.config.actor_rollout_ref.rollout.temperature' in src


def test_v1_worker_takes_an_empty_output_list():
    """How a failed episode leaves its group: the adapter returns [], which the v1 worker stores as nothing."""
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ

    src = inspect.getsource(AgentLoopWorkerTQ._agent_loop_postprocess)
    assert "if not outputs:" in src and 'logger.warning(f"Empty output for prompt {uid}_{session_id}")' in src


def test_rollout_reports_processed_logprobs():
    from verl.workers.config.rollout import RolloutConfig

    assert RolloutConfig.__dataclass_fields__["logprobs_mode"].default == "processed_logprobs"
