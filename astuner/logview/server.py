"""The viewer's HTTP server: a small JSON API over one experiment folder plus three static files.

Why the standard library: the viewer must start in well under a second next to a run, work in
any environment astuner works in, and serve one user; a threaded ``http.server`` does that.

Safety: trajectory text is model output and must never run as code. The page builds the DOM
with ``textContent`` only, and every response carries a Content-Security-Policy that forbids
inline and foreign scripts, so even a mistake there cannot execute ``<script>`` from a
trajectory. Requests must name this server's host (a DNS-rebinding page on another origin cannot
read the records), and the API takes step numbers and episode ids, never paths.
"""

from __future__ import annotations

import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from astuner.logview.records import ExperimentRecords, RecordsNotFound

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class BadRequest(ValueError):
    """A query parameter is missing or malformed (HTTP 400)."""


def _static(name: str) -> bytes:
    return resources.files("astuner.logview").joinpath("static", name).read_bytes()


def _int(params: dict[str, list[str]], key: str, default: int | None = None, lo: int = 0, hi: int = 10**9) -> int:
    raw = params.get(key, [None])[0]
    if raw is None:
        if default is None:
            raise BadRequest(f"missing query parameter {key!r}")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {key!r} must be an integer, not {raw!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter {key!r} must be in [{lo}, {hi}], not {value}")
    return value


def _str(params: dict[str, list[str]], key: str, default: str | None = None) -> str:
    raw = params.get(key, [default])[0]
    if raw is None:
        raise BadRequest(f"missing query parameter {key!r}")
    return raw


class LogviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, records: ExperimentRecords, host: str, port: int):
        self.records = records
        super().__init__((host, port), _Handler)
        self.host = host

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.server_address[1]}/"

    def allowed_hosts(self) -> set[str] | None:
        """Host headers we answer to; None when bound to all interfaces (the user asked for it)."""
        if self.host in ("0.0.0.0", "::"):
            return None
        port = self.server_address[1]
        names = {self.host, *LOOPBACK} if self.host in LOOPBACK else {self.host}
        return {f"{n}:{port}" for n in names} | {f"[{n}]:{port}" for n in names}


class _Handler(BaseHTTPRequestHandler):
    server: LogviewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        sys.stderr.write(f"logview {self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        allowed = self.server.allowed_hosts()
        if allowed is not None and self.headers.get("Host", "") not in allowed:
            self._json(HTTPStatus.FORBIDDEN, {"error": "unexpected Host header"})
            return
        url = urlsplit(self.path)
        if url.path in _STATIC:
            name, content_type = _STATIC[url.path]
            self._send(HTTPStatus.OK, _static(name), content_type)
            return
        if not url.path.startswith("/api/"):
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {url.path}"})
            return
        params = parse_qs(url.query)
        try:
            self._json(HTTPStatus.OK, self._api(url.path[len("/api/") :], params))
        except BadRequest as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except RecordsNotFound as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except (OSError, ValueError) as exc:  # e.g. a step file removed or corrupted under us
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})

    def _api(self, name: str, params: dict[str, list[str]]) -> Any:
        records = self.server.records
        if name == "overview":
            return records.overview()
        kind, step = _str(params, "kind", "train"), _int(params, "step")
        if name == "step":
            return records.step(
                kind,
                step,
                offset=_int(params, "offset", 0),
                limit=_int(params, "limit", 100, lo=1, hi=1000),
                sort=_str(params, "sort", "task"),
                descending=_str(params, "order", "asc") == "desc",
                status=_str(params, "status", ""),
                flag=_str(params, "flag", ""),
                query=_str(params, "q", ""),
            )
        if name == "episode":
            return records.episode_page(kind, step, _str(params, "id"))
        if name == "sample":
            return records.sample_page(kind, step, _str(params, "id"), _int(params, "index"))
        raise RecordsNotFound(f"no API {name!r}")


def make_server(experiment_dir: Path, host: str = "127.0.0.1", port: int = 0) -> LogviewServer:
    """Bind (port 0 = a free port chosen by the OS) without serving yet."""
    return LogviewServer(ExperimentRecords(experiment_dir), host, port)
