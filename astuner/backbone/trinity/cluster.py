"""The cluster a Trinity run plans for, and what one GPU changes (Trinity's colocate mode).

Why the plan decides: Trinity-RFT counts Ray's GPUs only once it has started, and on a one-node,
one-GPU cluster it switches itself to ``mode: colocate`` (explorer and trainer share the GPU),
where one engine is allowed. A config planned for ``mode: both`` with the tutorial's two engines
then fails after minutes of start-up, or (Trinity-RFT 0.6.0) hangs. Deciding here makes the dry
run show the config that runs, and says in one line what changed and why.

Where the numbers come from, first match wins:
    1. ``trinity.cluster.node_num`` and ``gpu_per_node``, set by the user;
    2. this machine's GPUs, when the Ray cluster is this machine (``--with-ray``, or no
       ``RAY_ADDRESS``): one node with that many GPUs;
    3. otherwise an assumption (the engines' GPUs plus one for the trainer), not written into the
       config, so Trinity counts the cluster's GPUs itself; set 1. to plan for that cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from astuner.backbone.translate import user_keys_under
from astuner.backbone.trinity.plugins import PLUGIN_DIR
from astuner.config.load import LoadedConfig

PLUGIN_DIRS_VAR = "TRINITY_PLUGIN_DIRS"  # trinity.common.constants.PLUGIN_DIRS_ENV_VAR
# trinity-rft releases whose colocate start-up needs astuner's plugin (Trinity-RFT #602, fixed upstream
# by PR #603): delete with plugins/colocate_engine.py once a release carries the fix.
COLOCATE_FIX_VERSIONS = ("0.6.0",)
COLOCATE_ENGINE_MEMORY = 0.25  # the share of the GPU Trinity's colocate mode leaves the engine


@dataclass(frozen=True)
class TrinityCluster:
    """The cluster a run is planned for.

    Attributes:
        node_num, gpu_per_node: its size.
        origin: where the numbers came from, for the plan's outline.
        written: whether the config names them (else Trinity counts Ray's GPUs when it starts).
    """

    node_num: int
    gpu_per_node: int
    origin: str
    written: bool

    @property
    def colocate(self) -> bool:
        """One GPU in all: Trinity's colocate mode, explorer and trainer on it together."""
        return self.node_num == 1 and self.gpu_per_node == 1


def plan_cluster(loaded: LoadedConfig, *, with_ray: bool, gpus_here: int, environ=None) -> TrinityCluster:
    """The cluster for ``loaded`` (see the module's docstring for the order)."""
    env = os.environ if environ is None else environ
    user = user_keys_under(loaded, ("trinity",))
    nodes, gpus = user.get("trinity.cluster.node_num"), user.get("trinity.cluster.gpu_per_node")
    if nodes and gpus:
        return TrinityCluster(int(nodes), int(gpus), "trinity.cluster", written=True)
    local = with_ray or not env.get("RAY_ADDRESS")
    if local and gpus_here >= 1:
        return TrinityCluster(1, gpus_here, f"this machine's {gpus_here} GPU(s)", written=True)
    cfg = loaded.astuner
    need = cfg.trainer_common.trinity_only__n_vllm_engine * cfg.rollout.tensor_model_parallel_size + 1
    why = "no GPU visible here" if local else f"the Ray cluster at RAY_ADDRESS={env.get('RAY_ADDRESS')}"
    return TrinityCluster(1, need, f"assumed ({why}; set trinity.cluster.node_num/gpu_per_node)", written=False)


def trinity_version() -> str:
    try:
        return version("trinity-rft")
    except PackageNotFoundError:
        return "not installed"


def colocate_plugin_env(environ=None) -> dict[str, str]:
    """``TRINITY_PLUGIN_DIRS`` with astuner's plugin folder first (the user's own folders kept after it).

    Trinity passes the variable on to every process it starts on Ray (``Config.get_envs``), and each
    of them loads the plugins before it builds anything.
    """
    env = os.environ if environ is None else environ
    dirs = [str(PLUGIN_DIR)] + [d for d in env.get(PLUGIN_DIRS_VAR, "").split(os.pathsep) if d]
    return {PLUGIN_DIRS_VAR: os.pathsep.join(dict.fromkeys(dirs))}
