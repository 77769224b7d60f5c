"""A stand-in for verl's vLLM server: the same ``generate`` call, deterministic scripted tokens.

Only the inference server is replaced (verl ships no CPU rollout); verl's load balancer,
``LLMServerClient``, ``AgentLoopManager`` and ``AgentLoopWorker`` are the real ones. Replies cycle
through ``replies`` per distinct prompt (the k-th request with a given prompt gets reply k), so the
repeats of one task get different replies whatever order they arrive in. Each sampled token gets
logprob ``-0.01 * (position + 1)``, so a test can tell exactly which engine values reached verl's batch.
"""

from __future__ import annotations

from typing import Any


class TokenServer:
    def __init__(self, replies: list[list[int]], global_steps: int = 7):
        self.replies, self.global_steps, self.requests = replies, global_steps, []
        self.seen: dict[tuple[int, ...], int] = {}

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kwargs: Any
    ) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        self.requests.append({"request_id": request_id, "prompt_len": len(prompt_ids), **sampling_params})
        k = self.seen.get(tuple(prompt_ids), 0)
        self.seen[tuple(prompt_ids)] = k + 1
        ids = list(self.replies[k % len(self.replies)])[: sampling_params["max_tokens"]]
        return TokenOutput(
            token_ids=ids,
            log_probs=[-0.01 * (i + 1) for i in range(len(ids))],
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    def get_requests(self) -> list[dict[str, Any]]:
        return self.requests
