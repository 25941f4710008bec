"""Probe the instance's own health endpoints: ``/health`` and the streaming server's.

Plain HTTP GETs with a short timeout (no token needed). Mastodon 4.6 answers
``OK`` as plain text; the documentation shows ``{"status":"UP"}``; both count as
healthy, anything else (an error status, another body, no answer) does not.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlsplit

from bot import defaults
from bot.model import InstanceHealth


def healthy_body(body: bytes) -> bool:
    """Return True for the bodies a healthy Mastodon sends: ``OK`` or ``{"status":"UP"}``."""
    text = body.decode("utf-8", errors="replace").strip()
    if text.upper() in {"OK", "SUCCESS"}:
        return True
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and str(data.get("status", "")).upper() in {"UP", "OK"}


def probe(url: str, timeout: float) -> tuple[bool, str | None]:
    """GET ``url``; return (healthy, error text)."""
    if urlsplit(url).scheme not in {"http", "https"}:
        return False, f"not an http(s) URL: {url}"
    request = urllib.request.Request(url, headers={"User-Agent": defaults.USER_AGENT})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(4096)
            status = response.status
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{type(exc).__name__}: {reason}"
    if status != 200:
        return False, f"HTTP {status}"
    if not healthy_body(body):
        return False, f"unexpected answer {body[:60]!r}"
    return True, None


class InstanceProber:
    """Probe ``<base>/health`` and the streaming health endpoint of one instance.

    ``streaming_url`` is the streaming server's base URL (``urls.streaming`` of
    the instance, often ``wss://…``); without it, the web host is used.
    """

    def __init__(self, base_url: str, streaming_url: str | None = None,
                 timeout: float = defaults.HEALTH_TIMEOUT) -> None:
        self._web = urljoin(base_url.rstrip("/") + "/", "health")
        streaming = streaming_url or base_url
        parts = urlsplit(streaming)
        scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
        base = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._streaming = f"{base}/api/v1/streaming/health"
        self._timeout = timeout

    def read(self) -> InstanceHealth:
        """Probe both endpoints once."""
        web_ok, web_error = probe(self._web, self._timeout)
        streaming_ok, streaming_error = probe(self._streaming, self._timeout)
        return InstanceHealth(web_ok, streaming_ok, web_error, streaming_error)
