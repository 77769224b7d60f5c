"""One algorithm on every backbone: the decisions, and how each backbone is made to follow them.

(The table is filled in below; see README "One algorithm on every backbone".)
"""

from __future__ import annotations

from typing import Any


def enters_group(episode: Any) -> bool:
    """Whether an episode is a member of its task's group (its reward enters mean, std and baselines).

    Only an episode that ended ``ok`` with a reward and left at least one training sample: a failed or
    timed-out one has no reward to compare, and one whose samples were all dropped (prompt over
    ``data.max_prompt_length``) has nothing its advantage could train. A "mad" episode is ``ok`` with
    ``rollout.agent_madness_reward``, so it is a member. The same rule runs in the debug backbone
    (``_train_items``), the verl adapter (``episode_outputs``) and the Trinity adapter
    (``episode_experiences``).
    """
    return episode.status == "ok" and episode.reward is not None and bool(episode.samples)
