"""Env servers for the tests: the reference game and a fault-injecting one, both on real loopback HTTP.

They run in a thread of the test process (fast, and their state can be inspected); the launch tests
start the reference server as a real child process instead.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from astuner.env_service.reference_server import GuessNumberService, make_server


class ServerThread:
    """An HTTP server serving in a daemon thread; ``stop()`` closes the port (the server 'dies')."""

    def __init__(self, server: ThreadingHTTPServer):
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def reference():
    """The reference game in a thread: ``(url, service)``."""
    service = GuessNumberService(max_number=10, max_turns=4, num_train=20, num_val=4)
    running = ServerThread(make_server(service))
    yield running.url, service
    running.stop()


class FaultPlan:
    """Which endpoint misbehaves and how; ``calls`` counts the requests each endpoint received.

    ``faults[endpoint]`` is a list consumed one request at a time (the last entry repeats):
    ``"ok"``, ``"500"``, ``"404"``, ``"hang"`` (answer after ``hang_seconds``), ``"garbage"`` (not JSON),
    ``"empty"`` (``data`` is an empty list).
    """

    def __init__(self):
        self.faults: dict[str, list[str]] = {}
        self.calls: Counter[str] = Counter()
        self.hang_seconds = 5.0
        self.live: set[str] = set()
        self.dead = False
        self.released: list[str] = []
        self.lock = threading.Lock()

    def next(self, endpoint: str) -> str:
        with self.lock:
            self.calls[endpoint] += 1
            plan = self.faults.get(endpoint, ["ok"])
            return plan.pop(0) if len(plan) > 1 else plan[0]


def fault_handler(plan: FaultPlan) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if plan.dead:  # like a killed process: the open connection closes without an answer
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            endpoint = self.path.strip("/")
            fault = plan.next(endpoint)
            if fault == "hang":
                time.sleep(plan.hang_seconds)
            if fault == "500":
                return self._send(500, b'{"error": "injected"}')
            if fault == "404":
                return self._send(404, b'{"error": "no such instance"}')
            if fault == "garbage":
                return self._send(200, b"<html>oops</html>")
            if fault == "empty":
                return self._send(200, b'{"data": []}')
            data = self._answer(endpoint, body)
            self._send(200, json.dumps({"data": data}).encode())

        def _answer(self, endpoint: str, body: dict):
            state = {"state": [{"role": "user", "content": "go"}], "reward": 0.0, "is_terminated": False, "info": {}}
            with plan.lock:
                if endpoint == "create":
                    plan.live.add(body["instance_id"])
                if endpoint == "release":
                    plan.live.discard(body["instance_id"])
                    plan.released.append(body["instance_id"])
            return {
                "get_env_profile": ["a", "b"],
                "create": state,
                "step": {**state, "is_terminated": True, "reward": 1.0},
                "evaluate": 0.5,
                "release": True,
                "get_info": {"tools": []},
            }[endpoint]

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def faulty():
    """A fault-injecting env server in a thread: ``(server_thread, plan)``."""
    plan = FaultPlan()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fault_handler(plan))
    server.daemon_threads = True
    running = ServerThread(server)
    yield running, plan
    if not plan.dead:
        running.stop()


def kill(running: ServerThread, plan: FaultPlan) -> None:
    """The server dies: kept-alive connections close unanswered, new ones are refused."""
    plan.dead = True
    running.stop()
