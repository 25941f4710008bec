"""How many requests the bot makes to its instance when all is well.

Runs the real bot (``bot.app.build`` with the Mastodon.py gateway and the
health prober) for 120 ticks, one simulated hour at the default 30 s interval,
against a healthy Sidekiq layout on a throwaway redis-server and mastodon-mock
on loopback. Counts every HTTP request the mock received, by path, from its
access log, separately for the first tick (start-up) and the 119 after it.

    .venv/bin/python bench/politeness.py [--write]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import redis

from bot import defaults
from bot.app import build
from bot.config import BotConfig, Config, MastodonConfig, PostsConfig, RedisConfig, Secret
from bot.demo import free_port, wait_until

TOKEN = "politeness-token"  # noqa: S105 - the throwaway server's seeded token
TICKS = 120
REQUEST = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) ([^ ?"]+)')


def healthy(client: redis.Redis) -> None:
    """Write a healthy Sidekiq 7 layout: one live process serving every queue, no backlog."""
    identity = "web1:1:0123456789ab"
    client.sadd("queues", *defaults.MASTODON_QUEUES)
    client.sadd("processes", identity)
    client.hset(identity, mapping={
        "info": json.dumps({"hostname": "web1", "pid": 1, "tag": "mastodon", "concurrency": 25,
                            "queues": list(defaults.MASTODON_QUEUES), "version": "7.3.9",
                            "started_at": time.time(), "identity": identity, "labels": []}),
        "busy": 0, "beat": time.time(), "quiet": "false", "rss": 300000})


def requests_in(log: Path, start: int) -> collections.Counter[str]:
    """Count the requests logged after byte ``start``, by method and path."""
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read().decode(errors="replace")
    return collections.Counter(f"{m} {p}" for m, p in REQUEST.findall(text))


def main() -> int:
    """Run the measurement and print (or write) the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="statusbot-politeness-"))
    redis_port, mock_port = free_port(), free_port()
    log = workdir / "mock.log"
    servers = [subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)]
    (workdir / "mock.toml").write_text(
        f'[[seed.accounts]]\nusername = "statusbot"\naccess_token = "{TOKEN}"\n')
    with log.open("wb") as sink:
        servers.append(subprocess.Popen(
            [sys.executable, "-m", "mastodon_mock", "serve", "--in-memory", "--host",
             "127.0.0.1", "--port", str(mock_port), "--config", str(workdir / "mock.toml"),
             "--log-level", "info"], stdout=sink, stderr=subprocess.STDOUT, cwd=workdir))
    try:
        client = redis.Redis(port=redis_port, decode_responses=True)
        wait_until(lambda: bool(client.ping()), 10, "redis-server")
        api = f"http://127.0.0.1:{mock_port}"
        wait_until(lambda: urllib.request.urlopen(api + "/health", timeout=1).status == 200,  # noqa: S310
                   30, "mastodon-mock")
        healthy(client)
        config = Config(
            redis=RedisConfig(url=f"redis://127.0.0.1:{redis_port}/0"),
            bot=BotConfig(interval=0.05, state_dir=str(workdir / "state")),
            mastodon=MastodonConfig(api_base_url=api, access_token=Secret(TOKEN)),
            posts=PostsConfig(),  # defaults: daily status post, profile field on
        )
        before = log.stat().st_size
        bot = build(config, out=sys.stdout)
        findings: list[int] = []
        marks: list[int] = []

        def after_tick(report: object) -> None:
            findings.append(len(getattr(report, "findings", ())))
            client.hset("web1:1:0123456789ab", "beat", time.time())
            time.sleep(0.2)  # let the mock flush its access log line
            marks.append(log.stat().st_size)

        bot.run(config.bot.interval, threading.Event(), on_tick=after_tick, max_ticks=TICKS)
        bot.store.close()
        first = requests_in(log, before) - requests_in(log, marks[0])
        steady = requests_in(log, marks[0])
    finally:
        for server in servers:
            server.kill()
            server.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    api_steady = sum(n for k, n in steady.items() if "/api/v1/streaming/health" not in k
                     and not k.endswith(" /health"))
    probes = sum(steady.values()) - api_steady
    intake_paths = ("/api/v1/accounts/verify_credentials", "/api/v1/instance/",
                    "/api/v2/instance/", "/api/v2/notifications/policy",
                    "/api/v1/streaming/user", "/api/v1/notifications")
    intake_start = sum(n for k, n in steady.items() if k.split(" ", 1)[1] in intake_paths)
    recurring = api_steady - intake_start
    lines = [
        "## Requests to the instance when all is well",
        "",
        "Command: `.venv/bin/python bench/politeness.py --write`",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the real bot "
        f"(Mastodon.py gateway, health prober) against mastodon-mock and redis-server on "
        f"loopback, {TICKS} ticks (one hour at the default 30 s interval), healthy Sidekiq "
        f"layout; findings per tick: max {max(findings)}.",
        f"- First tick (start-up): {sum(first.values())} requests: "
        + ", ".join(f"{k} x{n}" for k, n in sorted(first.items())),
        f"- The {TICKS - 1} ticks after it: {api_steady} API calls, {intake_start} of them the "
        "mention intake starting once (own account, instance, notification policy, first "
        f"backfill, the user stream), so **{recurring} recurring**; and {probes} health probes "
        f"({probes / (TICKS - 1):.0f} per tick). All: "
        + ", ".join(f"{k} x{n}" for k, n in sorted(steady.items())) + ".",
        f"- The mention backfill runs on a timer, every {defaults.MENTIONS_BACKFILL_EVERY:.0f} s, "
        "which this compressed run does not reach: add "
        f"{3600 / defaults.MENTIONS_BACKFILL_EVERY:.0f} GET /api/v1/notifications per real hour "
        "(paginated requests; Mastodon allows 300 per 15 min), over one long-lived user stream.",
        f"- So a healthy hour costs {recurring} API calls from the ticks, "
        f"{3600 / defaults.MENTIONS_BACKFILL_EVERY:.0f} from the mention backfill, one status "
        "post a day and the profile field only when the state changes; plus "
        f"{probes} unauthenticated health GETs (/health and the streaming health endpoint, built "
        "to be polled and not rate limited like the API; `[mastodon] probe_health = false` "
        "drops them).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        results = Path(__file__).with_name("RESULTS.md")
        old = results.read_text()
        head = "## Requests to the instance when all is well"
        if head in old:  # replace this section only, up to the next one
            leading, _, after = old.partition(head)
            rest = after.partition("\n## ")[2]
            updated = leading + text + ("\n## " + rest if rest else "")
        else:
            updated = old.rstrip() + "\n\n" + text
        results.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
