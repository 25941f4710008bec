"""A real mastodon-mock server on loopback for the integration tests, and a delivery child process.

``MastodonMock`` starts ``mastodon_mock serve --in-memory`` as a subprocess on
a free 127.0.0.1 port with a seeded bot account, waits until it answers, and
kills it at the end (SIGTERM hangs while SSE clients are connected). It talks
to the server with urllib only: fault rules, fresh accounts, what an account
has posted.

``python -m tests.integration.mastodon_mock deliver STATE URL TOKEN POSTS_JSON [STALL]``
runs the outbox until everything is delivered: the process the SIGKILL test
kills and then starts again. With STALL (seconds) it sleeps after each post
has been answered and before the outbox records the answer, so the test can
kill it exactly there.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.demo import free_port
from tests.integration.servers import wait_for

REPO = Path(__file__).resolve().parents[2]

BOT_USERNAME = "statusbot"
BOT_TOKEN = "statusbot-test-token"
ADMIN_USERNAME = "ops"
ADMIN_TOKEN = "ops-test-token"


def missing() -> str | None:
    """Return why mastodon-mock cannot run here, or None when it can."""
    if importlib.util.find_spec("mastodon_mock") is None:
        return "mastodon-mock is not installed (pip install '.[test]')"
    return None


class MastodonMock:
    """mastodon-mock 0.6.1 in a subprocess, seeded with the bot and one admin account."""

    def __init__(self, workdir: Path, extra_accounts: Sequence[dict[str, Any]] = (),
                 port: int | None = None, database: Path | None = None) -> None:
        """Seed the bot, the admin and ``extra_accounts``.

        ``extra_accounts`` are more ``[[seed.accounts]]``: username, access_token,
        and optionally domain (a remote account), bot = true, role. ``port``
        (default: a free one) starts a server where a stopped one was.
        ``database`` (default: in memory) is an SQLite file: a server started
        again on it keeps what the stopped one held (statuses, pins, idempotency
        keys); seeding an account that exists is a no-op.
        """
        self.port = port or free_port()
        self.workdir = workdir
        self.config = workdir / "mastodon_mock.toml"
        self.config.write_text(
            "[database]\n"
            f"path = {json.dumps(str(database) if database is not None else ':memory:')}\n"
            "[streaming]\n"
            "heartbeat_seconds = 1.0\n"
            "[[seed.accounts]]\n"
            f'username = "{BOT_USERNAME}"\n'
            f'access_token = "{BOT_TOKEN}"\n'
            "[[seed.accounts]]\n"
            f'username = "{ADMIN_USERNAME}"\n'
            'role = "admin"\n'
            f'access_token = "{ADMIN_TOKEN}"\n'
            + "".join("[[seed.accounts]]\n" + "".join(
                f"{key} = {json.dumps(value)}\n" for key, value in account.items())
                for account in extra_accounts),
            encoding="utf-8",
        )
        self.log = workdir / f"mastodon-mock-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mastodon_mock", "serve",
                 *(["--in-memory"] if database is None else []),
                 "--host", "127.0.0.1", "--port", str(self.port),
                 "--config", str(self.config), "--log-level", "warning"],
                cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            wait_for(self._answers, 30, f"mastodon-mock on port {self.port}")
        except TimeoutError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The API base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"mastodon-mock exited ({self.process.returncode}): "
                               f"{self.log_tail()}")
        try:
            return self.request("GET", "/health")[0] == 200
        except OSError:
            return False

    def log_tail(self) -> str:
        """Return the end of the server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def request(self, method: str, path: str, *, token: str | None = None,
                json_body: Any = None, form: Sequence[tuple[str, str]] | None = None,
                ) -> tuple[int, Any]:
        """Make one HTTP request to the server; return (status, parsed JSON or text)."""
        headers = {"Accept": "application/json"}
        data: bytes | None = None
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(list(form)).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.url + path, data=data,  # noqa: S310
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        text = body.decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def fault(self, rule: dict[str, Any]) -> str:
        """Add a fault rule (``POST /api/v1/_mock/faults``); return its id."""
        status, body = self.request("POST", "/api/v1/_mock/faults", json_body=rule)
        assert status == 200, body
        return str(body["id"])

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.request("DELETE", "/api/v1/_mock/faults")

    def new_account(self, username: str) -> str:
        """Create a local account (``/api/v1/_mock/dev_user``); return its token."""
        status, body = self.request("POST", "/api/v1/_mock/dev_user",
                                    json_body={"username": username})
        assert status == 200, body
        return str(body["access_token"])

    def account(self, token: str) -> dict[str, Any]:
        """Return the account of ``token`` (verify_credentials, with ``source``)."""
        status, body = self.request("GET", "/api/v1/accounts/verify_credentials", token=token)
        assert status == 200, body
        result: dict[str, Any] = body
        return result

    def statuses(self, token: str, *, pinned: bool = False) -> list[dict[str, Any]]:
        """Return every status of the account of ``token``, oldest first."""
        account_id = self.account(token)["id"]
        query = "?limit=40" + ("&pinned=true" if pinned else "")
        found: list[dict[str, Any]] = []
        path: str | None = f"/api/v1/accounts/{account_id}/statuses{query}"
        while path is not None:
            status, body = self.request("GET", path, token=token)
            assert status == 200, body
            found.extend(body)
            path = (f"/api/v1/accounts/{account_id}/statuses{query}&max_id={body[-1]['id']}"
                    if len(body) == 40 else None)
        return sorted(found, key=lambda s: int(s["id"]))

    def stop(self) -> None:
        """Kill the server (SIGTERM would hang on open streams) and wait for it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


# --- the delivery child process ------------------------------------------------------------


def post_to_json(post: Any) -> dict[str, Any]:
    """Return a ``Post`` as JSON-ready data for the child's command line."""
    return {"key": post.key, "kind": post.kind.value, "text": post.text,
            "visibility": post.visibility, "created_at": post.created_at,
            "spoiler_text": post.spoiler_text, "language": post.language,
            "parent_key": post.parent_key, "pin": post.pin, "unpin_key": post.unpin_key}


def deliver_child(argv: Sequence[str]) -> int:
    """Queue the posts and run the outbox until nothing is left; print the status ids."""
    from bot.mastodon_api import MastodonGateway
    from bot.model import Post, PostKind
    from bot.outbox import Outbox
    from bot.store import Store

    state, url, token, posts_json, *rest = argv
    stall = float(rest[0]) if rest else 0.0

    class Stalling(MastodonGateway):
        def post(self, post: Post, in_reply_to_id: str | None,
                 media_ids: Sequence[str] = ()) -> str:
            status_id = super().post(post, in_reply_to_id, media_ids)
            time.sleep(stall)  # answered, not yet recorded: the moment to die
            return status_id

    store = Store(state)
    gateway = Stalling(url, token, request_timeout=10.0)
    outbox = Outbox(store, gateway, clock=time.time, backoff_base=0.2, backoff_cap=1.0)
    posts = [Post(**{**data, "kind": PostKind(data["kind"])}) for data in json.loads(posts_json)]
    outbox.enqueue(posts)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report = outbox.deliver(time.time())
        if report.pending == 0 and not store.followups():
            print(json.dumps({post.key: store.status_id(post.key) for post in posts}))
            return 0
        time.sleep(0.1)
    return 1


if __name__ == "__main__":
    if len(sys.argv) in (6, 7) and sys.argv[1] == "deliver":
        sys.exit(deliver_child(sys.argv[2:]))
    sys.exit("usage: python -m tests.integration.mastodon_mock deliver STATE URL TOKEN POSTS "
             "[STALL]")
