"""A reference environment service: a small multi-turn text game behind the EnvService protocol.

Why it exists: it lets the tutorial, the tests and anyone porting a server see the protocol work
end to end on a laptop, with no downloads. It uses only the standard library (``http.server``), so
it starts in well under a second and adds no dependency.

The game (``env_type: guess_number``): the environment thinks of a whole number from 1 to
``--max-number``; the agent has ``--max-turns`` guesses and after each wrong one hears ``Higher.`` or
``Lower.``. The secret depends only on the task id (same id, same number), so groups of episodes of
one task are comparable. Guessing blindly wins about ``max_turns / max_number`` of the time, so even
a 135M model earns a reward now and then; halving the interval with the hints always wins when
``2 ** max_turns > max_number``: there is something to learn.

Run it::

    python -m astuner.env_service.reference_server --port 8080      # binds 127.0.0.1 only

Endpoints (all ``POST`` with the protocol's JSON body, answers ``{"data": ...}``): ``get_env_profile``,
``create``, ``step``, ``evaluate``, ``release``, ``get_info``; plus ``GET /health`` and ``GET /stats``
(live, created and released instance counts: tests use it to prove every instance was released).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENV_TYPE = "guess_number"
_INTEGER = re.compile(r"-?\d+")


class ProtocolError(Exception):
    """A bad request; answered with HTTP ``status`` and the message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Game:
    """One instance: the secret, the guesses so far, whether it ended."""

    task_id: str
    secret: int
    max_number: int
    max_turns: int
    guesses: list[int | None] = field(default_factory=list)
    solved: bool = False

    @property
    def over(self) -> bool:
        return self.solved or len(self.guesses) >= self.max_turns

    def intro(self) -> str:
        return (
            f"I am thinking of a whole number from 1 to {self.max_number}. Guess it: reply with one number. "
            f"After each wrong guess I say 'Higher.' or 'Lower.'. You have {self.max_turns} guesses."
        )

    def play(self, text: str) -> tuple[str, float]:
        """Apply one guess; returns the environment's reply and the step reward."""
        found = _INTEGER.search(text)
        guess = int(found.group(0)) if found else None
        self.guesses.append(guess)
        left = self.max_turns - len(self.guesses)
        if guess == self.secret:
            self.solved = True
            return f"Correct! The number was {self.secret}.", 1.0
        if guess is None:
            reply = f"That is not a number. Reply with one number from 1 to {self.max_number}."
        else:
            reply = "Higher." if guess < self.secret else "Lower."
        if left == 0:
            return f"{reply} No guesses left; the number was {self.secret}.", 0.0
        return f"{reply} {left} guess{'es' if left > 1 else ''} left.", 0.0


class GuessNumberService:
    """The protocol's logic, independent of HTTP (thread-safe: one lock around the instance table).

    Args:
        max_number: secrets are drawn from 1..max_number.
        max_turns: guesses per episode.
        num_train / num_val: number of task ids in the ``train`` and ``val`` splits.
    """

    def __init__(self, max_number: int = 10, max_turns: int = 4, num_train: int = 200, num_val: int = 32):
        self.max_number, self.max_turns = max_number, max_turns
        self.splits = {
            "train": [f"train-{i}" for i in range(num_train)],
            "val": [f"val-{i}" for i in range(num_val)],
        }
        self.games: dict[str, Game] = {}
        self.created = self.released = 0
        self.lock = threading.Lock()

    def secret_of(self, task_id: str) -> int:
        digest = hashlib.sha256(task_id.encode()).digest()
        return 1 + int.from_bytes(digest[:8], "big") % self.max_number

    def handle(self, endpoint: str, body: dict[str, Any]) -> Any:
        """Answer one protocol call (the value that goes under ``data``)."""
        if body.get("env_type") not in (None, ENV_TYPE):
            raise ProtocolError(f"env_type {body.get('env_type')!r} is not served here; this server has {ENV_TYPE!r}")
        handler = getattr(self, f"_{endpoint}", None)
        if endpoint.startswith("_") or handler is None:
            raise ProtocolError(f"no endpoint /{endpoint}", 404)
        return handler(body)

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {"live": len(self.games), "created": self.created, "released": self.released}

    def _get_env_profile(self, body: dict[str, Any]) -> list[str]:
        split = (body.get("params") or {}).get("split", "train")
        if split not in self.splits:
            raise ProtocolError(f"unknown split {split!r}; this server has {sorted(self.splits)}")
        return self.splits[split]

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        task_id, instance_id = body.get("task_id"), body.get("instance_id")
        if not task_id or not instance_id:
            raise ProtocolError("create needs task_id and instance_id")
        game = Game(str(task_id), self.secret_of(str(task_id)), self.max_number, self.max_turns)
        with self.lock:
            if instance_id in self.games:  # a retried create: answer as the first time
                game = self.games[instance_id]
            else:
                self.games[instance_id] = game
                self.created += 1
        return _result(game, [{"role": "user", "content": game.intro()}], 0.0)

    def _game(self, body: dict[str, Any]) -> Game:
        with self.lock:
            game = self.games.get(body.get("instance_id"))
        if game is None:
            raise ProtocolError(f"no live instance {body.get('instance_id')!r} (never created, or released)", 404)
        return game

    def _step(self, body: dict[str, Any]) -> dict[str, Any]:
        game = self._game(body)
        if game.over:
            raise ProtocolError(f"instance {body['instance_id']!r} is terminated; release it")
        action = body.get("messages")
        if isinstance(action, list):  # a list of messages: the last one is the action
            action = action[-1] if action else {}
        text = action.get("content", "") if isinstance(action, dict) else str(action)
        reply, reward = game.play(text if isinstance(text, str) else json.dumps(text))
        return _result(game, [{"role": "user", "content": reply}], reward)

    def _evaluate(self, body: dict[str, Any]) -> float:
        return 1.0 if self._game(body).solved else 0.0

    def _get_info(self, body: dict[str, Any]) -> dict[str, Any]:
        game = self._game(body)
        return {
            "env_type": ENV_TYPE,
            "instructions": game.intro(),
            "max_number": game.max_number,
            "max_turns": game.max_turns,
            "guesses": game.guesses,
        }

    def _release(self, body: dict[str, Any]) -> bool:
        with self.lock:
            game = self.games.pop(body.get("instance_id"), None)
            self.released += game is not None
        return game is not None


def _result(game: Game, state: list[dict[str, str]], reward: float) -> dict[str, Any]:
    return {
        "state": state,
        "reward": reward,
        "is_terminated": game.over,
        "info": {"turn": len(game.guesses), "solved": game.solved},
    }


def make_handler(service: GuessNumberService) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``service``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client pools connections

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._send(200, {"data": "ok"})
            elif self.path == "/stats":
                self._send(200, {"data": service.stats()})
            else:
                self._send(404, {"error": f"no GET {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ProtocolError("the body must be a JSON object")
                self._send(200, {"data": service.handle(self.path.strip("/"), body)})
            except ProtocolError as exc:
                self._send(exc.status, {"error": str(exc)})
            except json.JSONDecodeError as exc:
                self._send(400, {"error": f"invalid JSON: {exc}"})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def make_server(service: GuessNumberService, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server for ``service`` (port 0 picks a free one: read ``server.server_address``)."""
    server = ThreadingHTTPServer((host, port), make_handler(service))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--max-number", type=int, default=10, help="secrets are 1..N (default 10)")
    p.add_argument("--max-turns", type=int, default=4, help="guesses per episode (default 4)")
    p.add_argument("--num-train", type=int, default=200, help="task ids in split 'train' (default 200)")
    p.add_argument("--num-val", type=int, default=32, help="task ids in split 'val' (default 32)")
    a = p.parse_args(argv)
    service = GuessNumberService(a.max_number, a.max_turns, a.num_train, a.num_val)
    server = make_server(service, a.port, a.host)
    print(f"guess_number env service on http://{a.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
