"""The instance health probe, against a tiny HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.collect.instance import InstanceProber, healthy_body
from bot.model import InstanceHealth


@pytest.mark.parametrize(
    ("body", "healthy"),
    [
        pytest.param(b"OK", True, id="mastodon-4.6-plain-ok"),
        pytest.param(b'{"status":"UP"}', True, id="documented-json"),
        pytest.param(b"ok\n", True, id="case-and-newline"),
        pytest.param(b'{"status":"DOWN"}', False, id="json-down"),
        pytest.param(b"<html>502 Bad Gateway</html>", False, id="proxy-page"),
        pytest.param(b"", False, id="empty"),
        pytest.param(b"[1]", False, id="json-list"),
    ],
)
def test_healthy_body(body: bytes, healthy: bool) -> None:
    """Only Mastodon's healthy answers count as healthy."""
    assert healthy_body(body) is healthy


ROUTES: dict[str, tuple[int, bytes]] = {}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = ROUTES.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        pytest.param({"/health": (200, b"OK"), "/api/v1/streaming/health": (200, b"OK")},
                     InstanceHealth(True, True), id="both-up"),
        pytest.param({"/health": (503, b"down"), "/api/v1/streaming/health": (200, b"OK")},
                     InstanceHealth(False, True, "HTTP 503"), id="web-503"),
        pytest.param({"/health": (200, b"OK")},
                     InstanceHealth(True, False, None, "HTTP 404"), id="no-streaming"),
        pytest.param({"/health": (200, b"maintenance"), "/api/v1/streaming/health": (200, b"OK")},
                     InstanceHealth(False, True, "unexpected answer b'maintenance'"),
                     id="odd-body"),
    ],
)
def test_probe(server: str, routes: dict[str, tuple[int, bytes]],
               expected: InstanceHealth) -> None:
    """Each endpoint's state and error are reported separately."""
    ROUTES.clear()
    ROUTES.update(routes)
    assert InstanceProber(server, timeout=2).read() == expected


def test_streaming_url_from_instance(server: str) -> None:
    """A wss:// streaming URL is probed over https (here: ws → http)."""
    ROUTES.clear()
    ROUTES.update({"/api/v1/streaming/health": (200, b"OK")})
    streaming = server.replace("http://", "ws://")
    health = InstanceProber("http://127.0.0.1:9", streaming, timeout=2).read()
    assert health.streaming_ok is True
    assert health.web_ok is False and "Connection refused" in (health.web_error or "")
