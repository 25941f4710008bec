"""A Statuspage client nobody here wrote reads the page's API v2: npm's ``statuspage.io``.

The rendered page is served over HTTP on 127.0.0.1 (``http.server`` in a
thread, on a free port); a small script, written here, points the client at
that address (``setApiUrl``, its own way to leave statuspage.io) and prints
what ``getStatus`` and ``getSummary`` returned. That must be what the HTML
shows: the top line, every part and its state, the open incident with its
updates, the maintenance under way.
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot import page
from tests.integration import npm, page_states
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

CLIENT = """\
const { Statuspage } = require(process.argv[2]);
const client = new Statuspage("statusbot");  // any page id: the address is set next
client.setApiUrl(process.argv[3]);
(async () => {
  const status = await client.api.getStatus();
  const summary = await client.api.getSummary();
  process.stdout.write(JSON.stringify({ status, summary }));
})().catch((error) => { console.error(String(error)); process.exit(1); });
"""

STATE_WORDS = {"operational": "Normal", "degraded_performance": "Slow",
               "partial_outage": "Disrupted", "major_outage": "Stopped",
               "under_maintenance": "Maintenance"}


class Served:
    """A page directory served on a free 127.0.0.1 port; remembers the paths asked for."""

    def __init__(self, directory: Path) -> None:
        self.paths: list[str] = []
        served = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                served.paths.append(self.path)

        handler = functools.partial(Handler, directory=str(directory))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(params=page_states.STATES)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Served]]:
    """One state of the page, rendered and served over HTTP."""
    state: str = request.param
    page_states.write(state, tmp_path / "page")
    server = Served(tmp_path / "page")
    yield state, server
    server.stop()


def read_with_client(base_url: str, workdir: Path) -> dict[str, Any]:
    """Run the npm client under node against ``base_url``; return its status and summary."""
    need(npm.missing("statuspage.io", node=True))
    script = workdir / "client.cjs"
    script.write_text(CLIENT, encoding="utf-8")
    # Loopback only: no proxy may see (or swallow) these requests.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    result = subprocess.run([str(npm.node_path()), str(script),
                             str(npm.package_dir("statuspage.io")), base_url],
                            capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0, result.stderr
    read: dict[str, Any] = json.loads(result.stdout)
    return read


def what_the_html_shows(index: str) -> dict[str, Any]:
    """The top line, the parts, the incident's name and updates, as the HTML has them."""
    def text(fragment: str) -> str:
        return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()

    overall = re.search(r'role="status">(.*?)</p>', index, re.DOTALL)
    assert overall is not None
    parts = re.findall(r'<li><span>(.*?)</span> <span class="s (\w+)">(.*?)</span></li>', index)
    incident = re.search(r'<h2 id="incident">.*?<strong>(.*?)</strong>', index, re.DOTALL)
    updates = re.findall(r'<ol class="updates">.*?</ol>', index, re.DOTALL)
    posts = re.findall(r"<p>(.*?)</p>", updates[0], re.DOTALL) if updates else []
    maintenance = re.search(r'<h2 id="maint">.*?<li>(.*?)</li>', index, re.DOTALL)
    return {"overall": text(overall.group(1)),
            "parts": [(text(name), status, text(word)) for name, status, word in parts],
            "incident": text(incident.group(1)) if incident else None,
            "posts": [text(p) for p in posts],
            "maintenance": text(maintenance.group(1)) if maintenance else None}


EXPECTED_INDICATOR = {"normal": "none", "incident": "major", "maintenance": "none"}


def test_statuspage_client_reads_what_the_page_shows(served: tuple[str, Served],
                                                     tmp_path: Path) -> None:
    """The npm client's getStatus and getSummary give the page's own state and parts."""
    state, server = served
    read = read_with_client(server.url, tmp_path)
    assert server.paths == ["/api/v2/status.json", "/api/v2/summary.json"]
    shown = what_the_html_shows((tmp_path / "page" / "index.html").read_text(encoding="utf-8"))
    status, summary = read["status"], read["summary"]

    assert status["status"]["indicator"] == EXPECTED_INDICATOR[state]
    assert status["status"]["description"] == shown["overall"]
    assert summary["status"] == status["status"]
    assert status["page"]["name"] == "example.social status"

    components = [(c["name"], c["status"], STATE_WORDS[c["status"]])
                  for c in sorted(summary["components"], key=lambda c: c["position"])]
    assert components == shown["parts"]
    assert len(components) == len(page.PARTS)

    incidents = summary["incidents"]
    if shown["incident"] is None:
        assert incidents == []
    else:
        (incident,) = incidents
        assert incident["name"] == shown["incident"]
        assert incident["status"] in ("investigating", "identified", "monitoring")
        assert incident["impact"] == status["status"]["indicator"]
        bodies = [u["body"] for u in incident["incident_updates"]]
        assert bodies == list(reversed(shown["posts"]))  # the API lists the newest first
        touched = {c["name"] for c in incident["components"]}
        assert touched == {name for name, s, _ in shown["parts"] if s != "operational"}

    maintenances = summary["scheduled_maintenances"]
    if shown["maintenance"] is None:
        assert maintenances == []
    else:
        (window,) = maintenances
        assert window["status"] == "in_progress"
        assert shown["maintenance"].endswith(window["name"])
        covered = {c["name"] for c in window["components"]}
        assert {name for name, s, _ in shown["parts"] if s == "under_maintenance"} <= covered
