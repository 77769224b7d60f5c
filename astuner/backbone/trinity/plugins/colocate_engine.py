"""Trinity-RFT 0.6.0, colocate mode: start the rollout engine without reserving the one GPU.

Why: in colocate mode (explorer and trainer on one GPU) Trinity-RFT 0.6.0's ``Allocator`` puts the
vLLM engine actor in a placement group holding one whole Ray GPU, and verl's trainer asks Ray for
another: on a one-GPU cluster the start-up waits forever (Trinity-RFT issue #602). Upstream main
fixed it (PR #603, "Fix colocate mode") by starting the engine actor with ``num_gpus=0`` outside
any placement group; the two then share the GPU as colocate mode intends (Trinity caps the engine
at ``gpu_memory_utilization`` 0.25 and syncs weights in memory). No PyPI release has the fix yet.

What this does: on trinity-rft 0.6.0 only, ``Allocator.create_all_models`` creates the one rollout
engine (colocate mode allows exactly one, and no auxiliary models) that way, through the same
public pieces Trinity uses (``vLLMRolloutModel``, ``ModelWrapper``, ``Allocator.get_actor_name``).
On any other version it changes nothing. astuner's plan puts this folder on ``TRINITY_PLUGIN_DIRS``
only for colocate mode, so ``mode: both`` is untouched.

Delete this file (and ``COLOCATE_FIX_VERSIONS`` in ``astuner/backbone/trinity/config.py``) once a
trinity-rft release carries PR #603; ``tests/backbone/trinity/test_trinity_colocate_plugin.py`` pins the
symbols used here and fails on a version this was not written for.
"""

from __future__ import annotations

import copy
import logging

import ray
import trinity
from trinity.common.models.allocator import Allocator
from trinity.common.models.model import ModelWrapper

FIXED_VERSION = "0.6.0"
logger = logging.getLogger(__name__)


async def create_colocated_models(allocator: Allocator) -> tuple[list[ModelWrapper], list[list[ModelWrapper]]]:
    """The colocate-mode engine: one ``vLLMRolloutModel`` actor that reserves no Ray CPU or GPU.

    It sees the node's GPU because Ray (>= 2.5x) leaves ``CUDA_VISIBLE_DEVICES`` alone for an actor
    that asks for no GPU, and Trinity's colocate check points the engine at that one GPU.
    """
    from trinity.common.models.vllm_model import vLLMRolloutModel

    explorer = allocator.config
    if explorer.rollout_model.engine_num != 1 or explorer.auxiliary_models:
        raise ValueError("colocate mode runs exactly one rollout engine and no auxiliary models")
    config = copy.deepcopy(explorer.rollout_model)
    config.engine_id = 0
    config.node_rank = 0
    config.ray_actor_name = allocator.get_actor_name("rollout", 0, 0)
    logger.info("colocate mode: starting %s without a GPU reservation (Trinity-RFT #602)", config.ray_actor_name)
    actor = (
        ray.remote(vLLMRolloutModel)
        .options(name=config.ray_actor_name, namespace=config.ray_namespace, num_cpus=0, num_gpus=0)
        .remote(config=config)
    )
    await actor.prepare.remote()
    wrapper = ModelWrapper(models=[actor], config=config, api_address=await actor.get_api_server_url.remote())
    await wrapper.prepare()
    return [wrapper], []


def install() -> bool:
    """Route ``Allocator.create_all_models`` to ``create_colocated_models``; ``False`` on another version."""
    if trinity.__version__ != FIXED_VERSION:
        logger.warning(
            "astuner's colocate start-up fix is for trinity-rft %s, not %s: left out",
            FIXED_VERSION,
            trinity.__version__,
        )
        return False
    Allocator.create_all_models = create_colocated_models  # type: ignore[method-assign]
    return True


install()
