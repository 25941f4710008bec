"""The cost of one database reading (issue 10): connect, read-only queries, disconnect.

Run: ``.venv/bin/python bench/database_bench.py [--rounds 50] [--write]``.

Starts a throwaway PostgreSQL (the newest in /usr/lib/postgresql, as the
``postgres`` user, on a free loopback port; needs root), creates the README's
read-only role (``pg_monitor``), opens 20 connections named "sidekiq" and 20
unnamed (as Mastodon's) so ``pg_stat_activity`` has rows to group, then times
``read_database`` (a fresh TCP connection with scram authentication each
time, as the bot does once a minute) with ``time.perf_counter``. ``--write``
replaces the section ``## Database reading (issue 10)`` in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import snapshot_bench

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.collect.database import read_database
from bot.config import PostgresConfig, Secret
from tests.integration.servers import PostgresServer

HEADING = "## Database reading (issue 10)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    server = PostgresServer(Path(tempfile.mkdtemp()), max_connections=100)
    held = []
    try:
        with server.admin() as admin:
            admin.execute("CREATE ROLE statusbot_ro LOGIN PASSWORD 'bench-pw'")
            admin.execute("GRANT pg_monitor TO statusbot_ro")
            version = admin.execute("SHOW server_version").fetchone()[0]
        held = [server.admin(application_name=name) for name in ["sidekiq"] * 20 + [""] * 20]
        config = PostgresConfig("127.0.0.1", server.port, "postgres", "statusbot_ro",
                                Secret("bench-pw"))
        first = read_database(config)
        assert first.error is None, first.error
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            reading = read_database(config)
            times.append((time.perf_counter() - start) * 1000)
            assert reading.error is None, reading.error
            assert reading.in_use == first.in_use
    finally:
        for connection in held:
            connection.close()
        server.remove()
    times.sort()
    median = statistics.median(times)
    p95 = times[int(0.95 * (len(times) - 1))]
    when = datetime.now(timezone.utc)
    section = (
        f"{HEADING}\n\n"
        f"Command: `.venv/bin/python bench/database_bench.py --write` (as root: it runs "
        f"PostgreSQL as the postgres user)\n\n"
        f"- Date: {when:%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}, psycopg "
        f"{psycopg.__version__} ({psycopg.pq.__impl__}), PostgreSQL {version}; 2 CPUs shared "
        f"with other jobs\n"
        f"- Set-up: own PostgreSQL on loopback (max_connections 100), the README's read-only "
        f"role with pg_monitor, {first.in_use} other client connections (20 named sidekiq, "
        f"20 unnamed); each reading connects over TCP (scram-sha-256), runs the three "
        f"read-only statements and disconnects, as `DatabaseReader` does at most once a "
        f"minute\n\n"
        f"| readings | median ms | p95 ms | min ms | max ms |\n"
        f"|---:|---:|---:|---:|---:|\n"
        f"| {len(times)} | {median:.2f} | {p95:.2f} | {times[0]:.2f} | {times[-1]:.2f} |\n\n"
        f"Connecting and the queries are timed together (not broken down). At most one "
        f"reading a minute: about {median / 600:.3f} % of a minute's wall clock.\n")
    print(section)
    if args.write:
        snapshot_bench.write_section(section, HEADING)


if __name__ == "__main__":
    main()
