"""The protocol client against the reference server and a fault-injecting server, over loopback HTTP."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from astuner.env_service import EnvCallSettings, EnvServiceClient, EnvServiceError

FAST = EnvCallSettings(timeout=1.0, retries=2, backoff=0.01)


def run(coro):
    return asyncio.run(coro)


def test_full_protocol_against_the_reference_server(reference):
    url, service = reference
    client = EnvServiceClient(url, "guess_number", FAST)
    assert client.list_task_ids("val") == ["val-0", "val-1", "val-2", "val-3"]

    async def play():
        first = await client.create("val-1", "i1")
        assert first.state[0]["role"] == "user" and "1 to 10" in first.state[0]["content"]
        assert first.is_terminated is False
        info = await client.get_info("i1")
        assert info["max_turns"] == 4
        secret = service.secret_of("val-1")
        result = await client.step("i1", {"role": "assistant", "content": f"My guess: {secret}"})
        assert result.reward == 1.0 and result.is_terminated and "Correct" in result.state[0]["content"]
        assert await client.evaluate("i1") == 1.0
        assert await client.release("i1") is True
        assert await client.release("i1") is False  # already gone: the server says so
        await client.aclose()

    run(play())
    assert service.stats() == {"live": 0, "created": 1, "released": 1}


def test_unknown_split_and_env_type_are_not_retried_and_name_the_endpoint(reference):
    url, _ = reference
    with pytest.raises(EnvServiceError, match=rf"env service {url} POST /get_env_profile: HTTP 400: .*unknown split"):
        EnvServiceClient(url, "guess_number", FAST).list_task_ids("nope")
    with pytest.raises(EnvServiceError, match="HTTP 400.*'webshop' is not served") as info:
        run(EnvServiceClient(url, "webshop", FAST).create("train-0", "x"))
    assert "after" not in str(info.value)  # a 4xx is the caller's mistake: one attempt


def test_step_on_unknown_instance_names_url_endpoint_and_instance(reference):
    url, _ = reference
    with pytest.raises(EnvServiceError) as info:
        run(EnvServiceClient(url, "guess_number", FAST).step("ghost", {"role": "assistant", "content": "1"}))
    assert str(info.value).startswith(f"env service {url} POST /step (instance ghost): HTTP 404")
    assert info.value.endpoint == "step" and info.value.url == f"{url}/step"


def test_transient_500s_are_retried_then_succeed(faulty):
    server, plan = faulty
    plan.faults["create"] = ["500", "500", "ok"]
    result = run(EnvServiceClient(server.url, "t", FAST).create("a", "i"))
    assert result.state == [{"role": "user", "content": "go"}]
    assert plan.calls["create"] == 3


def test_persistent_500_fails_after_all_attempts(faulty):
    server, plan = faulty
    plan.faults["evaluate"] = ["500"]
    expected = rf"{server.url} POST /evaluate \(instance i\): HTTP 500.*after 3 attempts"
    with pytest.raises(EnvServiceError, match=expected):
        run(EnvServiceClient(server.url, "t", FAST).evaluate("i"))
    assert plan.calls["evaluate"] == 3


def test_step_is_never_retried_once_the_server_got_it(faulty):
    """A retried step could apply the agent's action twice: 5xx and read timeouts are final for step."""
    server, plan = faulty
    plan.faults["step"] = ["500"]
    client = EnvServiceClient(server.url, "t", FAST)
    with pytest.raises(EnvServiceError, match="POST /step .*HTTP 500"):
        run(client.step("i", {"role": "assistant", "content": "x"}))
    assert plan.calls["step"] == 1
    plan.faults["step"], plan.hang_seconds = ["hang"], 3.0
    started = time.monotonic()
    with pytest.raises(EnvServiceError, match="POST /step .*no answer within the timeout") as info:
        run(client.step("i", {"role": "assistant", "content": "x"}))
    assert time.monotonic() - started < 2.5 and plan.calls["step"] == 2 and info.value.timed_out


def test_a_hanging_call_times_out_and_is_retried(faulty):
    server, plan = faulty
    plan.faults["get_info"], plan.hang_seconds = ["hang", "ok"], 2.0
    assert run(EnvServiceClient(server.url, "t", FAST).get_info("i")) == {"tools": []}
    assert plan.calls["get_info"] == 2


def test_answers_that_break_the_protocol_are_errors(faulty):
    server, plan = faulty
    plan.faults["create"] = ["garbage"]
    with pytest.raises(EnvServiceError, match="POST /create .*answer is not JSON"):
        run(EnvServiceClient(server.url, "t", FAST).create("a", "i"))
    assert plan.calls["create"] == 1


def test_dead_server_names_url_and_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = EnvServiceClient(f"http://127.0.0.1:{port}", "t", FAST)
    expected = rf"127.0.0.1:{port} POST /create \(instance i\): connection refused.*3 attempts"
    with pytest.raises(EnvServiceError, match=expected):
        run(client.create("a", "i"))
    with pytest.raises(EnvServiceError, match=rf"127.0.0.1:{port} POST /step .*connection refused.*3 attempts"):
        run(client.step("i", {"content": "1"}))  # never reached the server: safe to retry even a step
