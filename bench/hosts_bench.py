"""A snapshot's Redis read with 0 and with 20 agents: round trips, commands and time.

Run: ``.venv/bin/python bench/hosts_bench.py [--rounds 2000] [--large-rounds 60] [--write]``.

A throwaway redis-server on loopback holds 20 agents' readings, written by
``bot.agent.Agent`` from this host's real psutil reading (interval 600 s, so
none expires during the run). Two ``SidekiqReader``s read it: one without an
``AgentReader`` (what a snapshot read before agents), one with it (what
``Collector`` does now). Round trips are counted at the connection (one
``send_packed_command`` is one round trip) and commands with ``INFO
commandstats``; times are ``time.perf_counter`` around ``SidekiqReader.read()``,
the readers taken in turn every round. Then the same at a large instance's size
(database 2: 300 live processes and 5,000 jobs, ``snapshot_bench.fill_db``), read
without and with 20 agents side by side, to give the agents' share of a real
snapshot as a ratio. ``--write`` replaces the section
``## Agents: a snapshot with 20 agents (issue 11)`` in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import redis
import snapshot_bench
from exporters_bench import start_redis
from redis.connection import Connection

from bot.agent import Agent
from bot.collect.agents import AgentReader
from bot.collect.host import HostReader
from bot.collect.sidekiq import SidekiqReader

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "## Agents: a snapshot with 20 agents (issue 11)"
AGENTS = 20
LARGE_PROCESSES = 300
LARGE_JOBS = 5_000


class Counting(Connection):
    """A connection that counts its writes: one write is one round trip."""

    sends = 0

    def send_packed_command(self, command: Any,  # noqa: ANN401 - redis-py's own signature
                            check_health: bool = True) -> None:
        """Count one round trip, then send."""
        type(self).sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def calls(client: redis.Redis) -> dict[str, int]:
    """Return the commands Redis has run so far, by name."""
    return {k.removeprefix("cmdstat_"): int(v["calls"])
            for k, v in client.info("commandstats").items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--large-rounds", type=int, default=60,
                        help="rounds at 300 processes and 5,000 jobs")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="hosts-bench-"))
    redis_process, url = start_redis(workdir)
    began = time.perf_counter()
    try:
        admin = redis.Redis.from_url(url, decode_responses=True)
        empty_url = url.rsplit("/", 1)[0] + "/1"
        job = json.dumps({"class": "Job", "queue": "default", "enqueued_at": time.time()})
        for db_url in (url, empty_url):  # one queue with a job in each: three round trips
            db = redis.Redis.from_url(db_url)
            db.sadd("queues", "default")
            db.lpush("queue:default", job)
        stats = HostReader().read()
        for n in range(AGENTS):
            Agent(admin, name=f"host-{n:02d}", interval=600.0, read=lambda: stats).write_once()
        reading_size = len(admin.get("statusbot:host:host-00") or "")

        def client(at: str) -> redis.Redis:
            return redis.Redis(connection_pool=redis.ConnectionPool.from_url(
                at, connection_class=Counting, decode_responses=True))

        readers = {"no AgentReader (before agents)": SidekiqReader(client(url), url=url),
                   "AgentReader, 0 agents": SidekiqReader(client(empty_url), url=url,
                                                          agents=AgentReader()),
                   f"AgentReader, {AGENTS} agents": SidekiqReader(client(url), url=url,
                                                                agents=AgentReader())}
        trips: dict[str, int] = {}
        commands: dict[str, dict[str, int]] = {}
        for name, reader in readers.items():
            reader.read()  # connects: handshake and an untimed PING
            Counting.sends = 0
            counter = admin if "0 agents" not in name else redis.Redis.from_url(empty_url)
            before = calls(counter)
            reader.read()
            after = calls(counter)
            trips[name] = Counting.sends
            sent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
            sent["info"] -= 1  # our own INFO commandstats
            commands[name] = sent
        agents = readers[f"AgentReader, {AGENTS} agents"].agents
        assert agents is not None
        assert sum(r.stats is not None for r in agents.readings) == AGENTS
        times: dict[str, list[float]] = {name: [] for name in readers}
        for round_ in range(args.rounds):
            order = list(readers.items())
            order = order[round_ % len(order):] + order[:round_ % len(order)]
            for name, reader in order:
                start = time.perf_counter()
                reader.read()
                times[name].append(time.perf_counter() - start)
        # A large instance: 300 processes, 5,000 jobs, read without and with 20 agents.
        large_url = url.rsplit("/", 1)[0] + "/2"
        large_admin = redis.Redis.from_url(large_url, decode_responses=True)
        snapshot_bench.PROCESS_COUNT = LARGE_PROCESSES
        fill = snapshot_bench.fill_db(large_admin, 2, LARGE_JOBS, random.Random(7))
        large = {"300 processes, 5,000 jobs": SidekiqReader(client(large_url), url=large_url),
                 f"300 processes, 5,000 jobs + {AGENTS} agents": SidekiqReader(
                     client(large_url), url=large_url, agents=AgentReader())}
        large_times: dict[str, list[float]] = {name: [] for name in large}
        with snapshot_bench.beats_kept_alive(large_admin, fill.identities):
            for n in range(AGENTS):
                Agent(large_admin, name=f"host-{n:02d}", interval=600.0,
                      read=lambda: stats).write_once()
            for name, reader in large.items():
                reader.read()
                Counting.sends = 0
                reader.read()
                trips[name] = Counting.sends
            for round_ in range(args.large_rounds):
                order = list(large.items())
                order = order[round_ % 2:] + order[:round_ % 2]
                for name, reader in order:
                    start = time.perf_counter()
                    _, sidekiq = reader.read()
                    large_times[name].append(time.perf_counter() - start)
                    assert sidekiq is not None
                    assert sidekiq.live_processes == LARGE_PROCESSES
        large_admin.close()
        admin.close()
    finally:
        redis_process.terminate()
        redis_process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - began
    rows = ["| Scenario | round trips | commands | read median (ms) | p90 (ms) |",
            "|---|---:|---|---:|---:|"]
    for name, values in times.items():
        ordered = sorted(values)
        sent = commands[name]
        listed = ", ".join(f"{k.upper()} {v}" for k, v in sorted(sent.items()))
        rows.append(f"| {name} | {trips[name]} | {sum(sent.values())}: {listed} | "
                    f"{statistics.median(values) * 1000:.3f} | "
                    f"{ordered[int(len(ordered) * 0.9)] * 1000:.3f} |")
    plain, agents_on = (statistics.median(v) * 1000 for v in large_times.values())
    large_rows = ["| Scenario | round trips | read median (ms) | p90 (ms) |",
                  "|---|---:|---:|---:|"]
    for name, values in large_times.items():
        ordered = sorted(values)
        large_rows.append(f"| {name} | {trips[name]} | {statistics.median(values) * 1000:.1f} | "
                          f"{ordered[int(len(ordered) * 0.9)] * 1000:.1f} |")
    section = "\n".join([
        HEADING, "",
        f"Command: `.venv/bin/python bench/hosts_bench.py --rounds {args.rounds} "
        f"--large-rounds {args.large_rounds} --write`", "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC (the run took {elapsed:.0f} s)",
        f"- Machine: {psutil.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        f"- A loopback redis-server with one Sidekiq queue holding one job (no process), and "
        f"in database 0 {AGENTS} agents' readings ({reading_size} bytes of JSON each, this "
        f"host's real reading); database 1 has no agent. {args.rounds} rounds, the readers "
        f"taken in turn (rotated every round)",
        "",
        *rows, "",
        f"Requirement: still 3 round trips with {AGENTS} agents: "
        f"**{'met' if trips[f'AgentReader, {AGENTS} agents'] == 3 else 'NOT met'}** (SMEMBERS "
        f"statusbot:hosts rides in the second round trip, GET and PTTL of each reading in "
        f"the third). The time added is reading and checking each agent's JSON.", "",
        f"At a large instance's size (database 2: {LARGE_PROCESSES} live processes, "
        f"{LARGE_JOBS:,} jobs, Mastodon-like queues, as `bench/snapshot_bench.py` fills them; "
        f"{args.large_rounds} rounds, the two readers alternating):", "",
        *large_rows, "",
        f"20 agents add {agents_on - plain:.1f} ms to a {plain:.1f} ms snapshot: ratio "
        f"{agents_on / plain:.3f}x, measured side by side in one run.", ""])
    print(section)
    if args.write:
        snapshot_bench.write_section(section, HEADING, RESULTS)


if __name__ == "__main__":
    main()
