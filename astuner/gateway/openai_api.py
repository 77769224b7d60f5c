"""The OpenAI wire format: check a request, turn it into an ``EpisodeLLM`` call, format the reply.

Honest by construction: every field of a request is either honoured exactly, known to have no
effect on sampling (``user``, ``metadata``, ``store``, ``stream_options``), or answered with a 400
naming it (``GatewayError``). Fields astuner cannot honour exactly (``n > 1``, ``logit_bias``,
``top_logprobs > 0``, a ``model`` other than the policy, ``stop`` strings, ...) may instead be dropped
per name through ``rollout.gateway.ignore_unsupported``, each drop counted in the episode's metrics.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from astuner.tuner.episode_llm import Reply

ROLES = ("system", "developer", "user", "assistant", "tool")
NO_EFFECT = ("user", "metadata", "store", "stream_options", "service_tier")
SAMPLING = ("temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens")
CHAT_FIELDS = ("model", "messages", "tools", "tool_choice", "stream", "response_format", "logprobs", "top_logprobs")
COMPLETION_FIELDS = ("model", "prompt", "stream", "logprobs")


class GatewayError(Exception):
    """A request the gateway answers with ``status`` and an OpenAI-style error naming ``param``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str = "invalid_request"):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "type": "invalid_request_error", "param": self.param, "code": self.code}
        }


def _bad(param: str, message: str) -> GatewayError:
    return GatewayError(400, f"{param}: {message}", param)


@dataclass
class ParsedRequest:
    """A checked request: what to pass to ``EpisodeLLM`` and how to answer."""

    sampling: dict[str, Any]
    stream: bool = False
    logprobs: bool = False
    include_usage: bool = False
    ignored: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    json_schema: dict[str, Any] | None = None
    prompt: str | list[int] | None = None


def _unsupported(body: dict[str, Any], model_name: str, ignore: tuple[str, ...]) -> list[str]:
    """Names of set parameters that cannot be honoured; raises for each one not in ``ignore``."""
    found = []
    checks = {
        "n": lambda v: v not in (None, 1),
        "logit_bias": lambda v: bool(v),
        "top_logprobs": lambda v: v not in (None, 0),
        "model": lambda v: v != model_name,
        "stop": lambda v: bool(v),
        "seed": lambda v: v is not None,
        "presence_penalty": lambda v: v not in (None, 0, 0.0),
        "frequency_penalty": lambda v: v not in (None, 0, 0.0),
        "parallel_tool_calls": lambda v: v is False,
        "echo": lambda v: bool(v),
        "best_of": lambda v: v not in (None, 1),
        "suffix": lambda v: bool(v),
    }
    for name, cannot in checks.items():
        if name in body and cannot(body[name]):
            if name not in ignore:
                why = (
                    f"this endpoint serves only {model_name!r}"
                    if name == "model"
                    else "astuner cannot honour it exactly"
                )
                raise _bad(
                    name,
                    f"= {body[name]!r} is not supported ({why}); drop it, or list it in "
                    "astuner.rollout.gateway.ignore_unsupported to have it ignored with a counted warning",
                )
            found.append(name)
    return found


def _check_fields(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise GatewayError(400, "the request body must be a JSON object", None)
    known = set(allowed) | set(NO_EFFECT) | set(SAMPLING) | {"n", "logit_bias", "top_logprobs", "stop", "seed"}
    known |= {"presence_penalty", "frequency_penalty", "parallel_tool_calls", "echo", "best_of", "suffix"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise _bad(unknown[0], "unknown field (not an OpenAI parameter this endpoint knows)")
    if not isinstance(body.get("model"), str):
        raise _bad("model", "required, a string (GET /v1/models lists the one served)")
    return body


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, lo in (("temperature", 0.0), ("top_p", 0.0)):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < lo:
                raise _bad(name, f"must be a number >= {lo:g}, got {value!r}")
            out[name] = float(value)
    for name in ("max_tokens", "max_completion_tokens", "top_k"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and name != "top_k"):
                raise _bad(name, f"must be a positive integer, got {value!r}")
            out["max_tokens" if name != "top_k" else "top_k"] = value
    return out


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _bad("messages", "required, a non-empty list of message objects")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise _bad(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}")
        content = m.get("content")
        if not (content is None or isinstance(content, (str, list))):
            raise _bad(f"messages[{i}].content", "must be a string, a list of content parts or null")
        for j, part in enumerate(content if isinstance(content, list) else []):
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise _bad(
                    f"messages[{i}].content[{j}]", 'only text parts ({"type": "text", "text": ...}) are supported'
                )
        for j, call in enumerate(m.get("tool_calls") or []):
            if not (isinstance(call, dict) and isinstance(call.get("function"), dict) and call["function"].get("name")):
                raise _bad(f"messages[{i}].tool_calls[{j}]", 'must be {"type": "function", "function": {"name", ...}}')
        out.append({**m, "role": "system"} if m["role"] == "developer" else m)
    return out


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools", "must be a list of tools")
        for i, t in enumerate(tools):
            if not (isinstance(t, dict) and isinstance(t.get("function"), dict) and t["function"].get("name")):
                raise _bad(f"tools[{i}]", 'must be {"type": "function", "function": {"name": ..., "parameters": ...}}')
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str):
            raise _bad("tool_choice", 'a named choice must be {"type": "function", "function": {"name": ...}}')
        choice = name
    elif choice not in (None, "auto", "none", "required"):
        raise _bad("tool_choice", f"must be 'auto', 'none', 'required' or a named function, got {choice!r}")
    return tools or None, choice


def _json_schema(value: Any) -> dict[str, Any] | None:
    if value is None or value == {"type": "text"}:
        return None
    if not isinstance(value, dict):
        raise _bad("response_format", "must be an object")
    if value.get("type") == "json_object":
        return {"type": "object"}
    schema = (value.get("json_schema") or {}).get("schema") if value.get("type") == "json_schema" else None
    if not isinstance(schema, dict):
        raise _bad("response_format", 'must be {"type": "text" | "json_object"} or {"type": "json_schema", ...schema}')
    return schema


def parse_chat(body: Any, model_name: str, ignore: tuple[str, ...]) -> ParsedRequest:
    """Check a ``POST /v1/chat/completions`` body (raises ``GatewayError`` naming the bad field)."""
    body = _check_fields(body, CHAT_FIELDS)
    ignored = _unsupported(body, model_name, ignore)
    tools, choice = _tools(body)
    if not isinstance(body.get("logprobs", False), (bool, type(None))):
        raise _bad("logprobs", "must be true or false")
    return ParsedRequest(
        sampling=_sampling(body),
        stream=bool(body.get("stream")),
        logprobs=bool(body.get("logprobs")),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        ignored=ignored,
        messages=_messages(body.get("messages")),
        tools=tools,
        tool_choice=choice,
        json_schema=_json_schema(body.get("response_format")),
    )


def parse_completion(body: Any, model_name: str, ignore: tuple[str, ...]) -> ParsedRequest:
    """Check a ``POST /v1/completions`` body: ``prompt`` is a string or a list of token ids (one prompt)."""
    body = _check_fields(body, COMPLETION_FIELDS)
    ignored = _unsupported(body, model_name, ignore)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    ok = isinstance(prompt, str) or (
        isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    )
    if not ok:
        raise _bad("prompt", "required, one prompt: a string or a list of token ids")
    logprobs = body.get("logprobs")
    if logprobs not in (None, 0):
        raise _bad("logprobs", f"= {logprobs!r}: only 0 (the sampled tokens' logprobs, no alternatives) is supported")
    return ParsedRequest(
        sampling=_sampling(body),
        stream=bool(body.get("stream")),
        logprobs=logprobs == 0,
        ignored=ignored,
        prompt=prompt,
    )


# ---- replies ---------------------------------------------------------------------------------
def finish_reason(reply: Reply) -> str:
    """OpenAI's finish_reason: a context overflow reads as ``length`` (nothing could be generated)."""
    if reply.tool_calls:
        return "tool_calls"
    return "length" if reply.finish_reason in ("length", "context_overflow") else "stop"


def _envelope(prefix: str, kind: str, model_name: str, choice: dict[str, Any], reply: Reply) -> dict[str, Any]:
    p, c = len(reply.call.prompt_ids), len(reply.call.response_ids)
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model_name,
        "choices": [choice],
        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
    }


def _logprobs(reply: Reply, tokenizer: Any) -> dict[str, Any]:
    tokens = [tokenizer.decode([i]) for i in reply.call.response_ids]
    return {
        "content": [
            {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
            for t, lp in zip(tokens, reply.call.logprobs, strict=True)
        ]
    }


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
        }
        for c in reply.tool_calls
    ]


def chat_response(reply: Reply, req: ParsedRequest, model_name: str, tokenizer: Any) -> dict[str, Any]:
    calls = _tool_calls(reply)
    message: dict[str, Any] = {"role": "assistant", "content": reply.content if (reply.content or not calls) else None}
    if calls:
        message["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": finish_reason(reply),
        "logprobs": _logprobs(reply, tokenizer) if req.logprobs else None,
    }
    return _envelope("chatcmpl", "chat.completion", model_name, choice, reply)


def chat_chunks(response: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """``response`` as the ``chat.completion.chunk`` events of a stream (sent once the reply is complete)."""
    choice = response["choices"][0]
    message = choice["message"]
    base = {k: response[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    if message.get("content"):
        chunks.append(chunk({"content": message["content"]}, logprobs=choice["logprobs"]))
    for i, call in enumerate(message.get("tool_calls") or []):
        chunks.append(chunk({"tool_calls": [{"index": i, **call}]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return chunks


def completion_response(reply: Reply, req: ParsedRequest, model_name: str, tokenizer: Any) -> dict[str, Any]:
    logprobs = None
    if req.logprobs:
        ids = reply.call.response_ids
        logprobs = {
            "tokens": [tokenizer.decode([i]) for i in ids],
            "token_logprobs": list(reply.call.logprobs),
            "top_logprobs": None,
            "text_offset": None,
        }
    choice = {"index": 0, "text": reply.text, "finish_reason": finish_reason(reply), "logprobs": logprobs}
    return _envelope("cmpl", "text_completion", model_name, choice, reply)


def models_response(model_name: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "astuner"}]}
