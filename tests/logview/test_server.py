"""The viewer's HTTP surface over real loopback sockets: headers, errors, host checks."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit


def get(url: str, path: str, host: str | None = None):
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", path, headers={"Host": host} if host else {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r, body


def test_pages_carry_a_strict_content_security_policy(viewer_url):
    r, body = get(viewer_url, "/")
    assert r.status == 200 and b"/static/app.js" in body
    csp = r.getheader("Content-Security-Policy")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert r.getheader("X-Content-Type-Options") == "nosniff"
    for path in ("/static/app.js", "/static/style.css"):
        assert get(viewer_url, path)[0].status == 200


def test_api_answers_json(viewer_url):
    r, body = get(viewer_url, "/api/step?kind=train&step=1&limit=2&sort=reward&order=desc")
    data = json.loads(body)
    assert r.status == 200 and r.getheader("Content-Type").startswith("application/json")
    assert data["total"] == 7 and len(data["episodes"]) == 2 and data["episodes"][0]["reward"] == 1.0


def test_bad_requests_say_what_is_wrong(viewer_url):
    cases = {
        "/api/step?kind=train": (400, "missing query parameter 'step'"),
        "/api/step?kind=train&step=x": (400, "'step' must be an integer"),
        "/api/step?kind=train&step=1&limit=0": (400, "'limit' must be in [1, 1000]"),
        "/api/step?kind=train&step=1&sort=evil": (404, "sort must be one of"),
        "/api/step?kind=train&step=77": (404, "no train step 77"),
        "/api/episode?kind=train&step=1&id=../../etc/passwd": (404, "no episode"),
        "/api/nothing?step=1": (404, "no API 'nothing'"),
        "/static/../../config.yaml": (404, "no page"),
    }
    for path, (status, message) in cases.items():
        r, body = get(viewer_url, path)
        assert r.status == status, path
        assert message in json.loads(body)["error"], path


def test_requests_for_another_host_are_refused(viewer_url):
    # a page on evil.example that resolves its name to 127.0.0.1 (DNS rebinding) cannot read records
    r, _ = get(viewer_url, "/api/overview", host="evil.example:80")
    assert r.status == 403
    port = urlsplit(viewer_url).port
    assert get(viewer_url, "/api/overview", host=f"localhost:{port}")[0].status == 200
