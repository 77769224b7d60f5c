"""The contract with Trinity-RFT 0.6.0: every Trinity symbol, signature, field and config key astuner uses.

Why: the predecessor broke on Trinity releases. When Trinity is upgraded, this file is where it
fails first and says exactly what moved; fix ``astuner/backbone/trinity/`` and this list together.
Used by astuner/backbone/trinity/: workflow.py (Workflow and its class flags, Task fields,
ModelWrapper.api_address/model_path/prepare, Experience/EID), config.py (the Config keys below,
algorithm and advantage names, ``Config.check_and_update``), run.py (``python -m trinity.cli.launcher
run --config``). The tests also use ``load_config``, ``get_buffer_reader``, ``get_external_model_wrapper``,
``Experience.serialize_many``/``deserialize_many`` and the advantage registry. The algorithm rows of
``astuner/algo/semantics.py`` rest on the Trinity behaviour pinned at the end.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing

from astuner.backbone.trinity.config import TO_TRINITY, wiring


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_trinity_version():
    from importlib.metadata import version

    assert version("trinity-rft") == "0.6.0", (
        "astuner's adapter is written against Trinity-RFT 0.6.0; re-check this file"
    )


def test_workflow_base():
    from trinity.common.workflows.workflow import Workflow

    assert _params(Workflow.__init__) == ["self", "task", "model", "auxiliary_models"]
    assert all(
        inspect.signature(Workflow.__init__).parameters[p].kind == inspect.Parameter.KEYWORD_ONLY
        for p in ("task", "model", "auxiliary_models")
    )
    assert _params(Workflow.set_repeat_times) == ["self", "repeat_times", "run_id_base"]
    assert inspect.iscoroutinefunction(Workflow.run_async)
    assert {"can_repeat", "is_async", "can_reset"} <= set(vars(Workflow))


def test_task_fields():
    from trinity.common.workflows.workflow import Task

    fields = {f.name for f in dataclasses.fields(Task)}
    assert {"workflow", "repeat_times", "workflow_args", "is_eval", "raw_task", "batch_id", "task_id"} <= fields
    assert _params(Task.to_workflow) == ["self", "model", "auxiliary_models"]


def test_model_wrapper():
    from trinity.common.models.model import ModelWrapper

    assert _params(ModelWrapper.__init__) == ["self", "model", "models", "config", "api_address"]
    assert inspect.iscoroutinefunction(ModelWrapper.prepare)
    assert isinstance(ModelWrapper.model_path, property)
    assert "self.api_address" in inspect.getsource(ModelWrapper.__init__)  # the attribute the adapter reads


def test_experience_and_eid():
    from trinity.common.experience import EID, Experience

    params = _params(Experience.__init__)
    for name in (
        "eid",
        "tokens",
        "logprobs",
        "reward",
        "truncate_status",
        "info",
        "metrics",
        "prompt_length",
        "action_mask",
    ):
        assert name in params, name
    assert {f.name for f in dataclasses.fields(EID)} >= {"batch", "task", "run", "step"}


def test_algorithm_and_advantage_names():
    from trinity.algorithm import ALGORITHM_TYPE
    from trinity.algorithm.advantage_fn import ADVANTAGE_FN

    for name in ("grpo", "multi_step_grpo", "rloo", "reinforceplusplus"):
        assert ALGORITHM_TYPE.get(name) is not None, name
    assert ALGORITHM_TYPE.get("multi_step_grpo").default_config()["advantage_fn"] == "step_wise_grpo"
    assert ADVANTAGE_FN.get("step_wise_grpo") is not None and ADVANTAGE_FN.get("grpo") is not None


def _field_type(cls, name):
    hints = typing.get_type_hints(cls)
    tp = hints[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) is typing.Union and args else tp


def _has_key(cls, dotted: str) -> bool:
    """Whether ``dotted`` is a field path of Trinity's Config dataclasses (dict fields take any sub-key)."""
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls):
            return cls in (dict, typing.Any) or typing.get_origin(cls) is dict
        if part not in {f.name for f in dataclasses.fields(cls)}:
            return False
        cls = _field_type(cls, part)
    return True


def test_every_translated_and_wired_key_exists_in_trinitys_config(tmp_path):
    from trinity.common.config import Config

    keys = [t for targets in TO_TRINITY.values() for t, _ in targets] + list(wiring(tmp_path, True)) + ["name"]
    missing = [k for k in keys if not _has_key(Config, k)]
    assert not missing, f"not in trinity.common.config.Config: {missing}"


def test_config_check_and_launcher():
    from trinity.cli import launcher
    from trinity.common.config import Config, load_config

    assert _params(load_config) == ["config_path"] and _params(Config.check_and_update) == ["self"]
    assert callable(launcher.main) and "run" in [c.callback.__name__ for c in launcher.app.registered_commands]


# ---- the algorithm (astuner/algo/semantics.py; test_trinity_algorithm_parity.py calls these) ----------


def test_loss_functions():
    from trinity.algorithm import KL_FN, POLICY_LOSS_FN
    from trinity.trainer.verl.losses import TrinityPolicyLoss

    assert _params(TrinityPolicyLoss.__init__) == ["self", "algo_config"]
    assert _params(TrinityPolicyLoss.__call__) == ["self", "model_output", "data", "dp_group"]
    ppo = POLICY_LOSS_FN.get("ppo")
    assert {"clip_range_low", "clip_range_high", "clip_ratio_c", "loss_agg_mode"} <= set(_params(ppo.__init__))
    src = inspect.getsource(KL_FN.get("low_var_kl").calculate_kl)  # k3 with both clamps, as astuner's
    assert "torch.clamp(kl, min=-20, max=20)" in src and "torch.clamp(kld, min=-10, max=10)" in src


def test_advantage_functions():
    from trinity.algorithm import ALGORITHM_TYPE
    from trinity.algorithm.advantage_fn import ADVANTAGE_FN
    from trinity.buffer.operators.experience_operator import ensure_v1_operator
    from trinity.trainer.verl.utils import to_data_proto

    assert callable(ensure_v1_operator) and _params(to_data_proto)[:2] == ["experiences", "pad_token_id"]
    for name in ("grpo", "opmd", "step_wise_grpo", "rloo", "reinforceplusplus"):
        assert ADVANTAGE_FN.get(name) is not None, name
    assert ADVANTAGE_FN.get("opmd").default_args()["opmd_baseline"] == "mean"  # r - mean: GRPO without std
    src = inspect.getsource(ADVANTAGE_FN.get("grpo").calculate_group_advantage)
    assert "torch.std(rewards)" in src  # unbiased, as astuner's
    # where Trinity computes each (the explorer's pipeline on a whole step, or the trainer on its batch)
    assert not ALGORITHM_TYPE.get("grpo").compute_advantage_in_trainer
    assert ALGORITHM_TYPE.get("rloo").compute_advantage_in_trainer


def test_runner_keeps_a_workflows_eid_task_and_engine_reports_processed_logprobs():
    """The placeholder of a left-out episode keeps its own group; the engine reports the sampling distribution."""
    from trinity.common.models import vllm_model
    from trinity.explorer.workflow_runner import WorkflowRunner

    assert 'if exp.eid.task == "":' in inspect.getsource(WorkflowRunner.run_task)
    assert 'logprobs_mode="processed_logprobs"' in inspect.getsource(vllm_model)


def test_trainer_and_explorer_failures_are_logged_and_swallowed():
    """``outcome.swallowed_failure`` reads these messages: Trinity logs a failed loop and returns normally."""
    from trinity.explorer.explorer import Explorer
    from trinity.trainer.trainer import Trainer

    from astuner.backbone.trinity.outcome import FAILURE_MARKS

    for cls, method, mark in ((Trainer, "train", "Error in Trainer:"), (Explorer, "explore", "Error in Explorer:")):
        source = inspect.getsource(getattr(cls, method))
        assert mark in FAILURE_MARKS and f'f"{mark}' in source and "except Exception:" in source, (cls, method)
