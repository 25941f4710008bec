"""Benchmark the job-metrics read (issue 10): one pipelined round trip of HGETALLs.

Run from the project root::

    .venv/bin/python bench/jobmetrics_bench.py          # prints a Markdown report
    .venv/bin/python bench/jobmetrics_bench.py --quick  # fewer repetitions

Starts its own ``redis-server`` on a free loopback port (no persistence),
fills Sidekiq 7.x minute hashes ``j|YYYYMMDD|H:M`` for 60 minutes, in two
databases: Mastodon-like (150 classes) and hostile-large (2,000 classes),
3 fields per class, then times ``read_totals`` + ``summarise`` (the whole
per-read cost: one HGETALL of each minute's 7.x and 8.x key, sent as one
pipeline) over 15 and 60 minutes, on a warm connection, and records the
Redis commands and socket sends per read, the reply size, and the Python
peak memory of one read (tracemalloc).

Beside the tick: in a third database, a Mastodon-like Sidekiq 7 layout
(``snapshot_bench.fill_scale_db``: 5,000 jobs, 300 processes) with 15 minutes
of metrics for 150 classes; a whole ``Collector.collect()`` (the snapshot
and the host reading, as a tick takes it) is timed alone and followed by
the job-metrics read, alternating, so both columns share the machine's load.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import subprocess
import tempfile
import time
import tracemalloc

import redis
import snapshot_bench

from bot.collect import Collector
from bot.collect.jobmetrics import minute_keys, read_totals, summarise
from bot.config import Config
from bot.demo import free_port

NOW_MINUTE = (1_767_225_600 // 60) + 3 * 60 + 7  # 2026-01-01 03:07 UTC


def fill(client: redis.Redis, classes: int, minutes: int) -> None:
    """Write ``minutes`` minute hashes of ``classes`` classes each."""
    for back in range(1, minutes + 1):
        mapping: dict[str, int] = {}
        for index in range(classes):
            name = f"Bench::Worker{index}Worker"
            mapping[f"{name}|p"] = 10 + index % 7
            mapping[f"{name}|f"] = index % 3
            mapping[f"{name}|ms"] = 1000 + index
        client.hset(minute_keys(NOW_MINUTE - back)[0], mapping=mapping)  # type: ignore[arg-type]


def measure(client: redis.Redis, minutes: int, repeats: int) -> dict[str, float]:
    """Time ``repeats`` reads of ``minutes`` minutes; return median/p95 ms and peak memory."""
    read_totals(client, NOW_MINUTE, minutes)  # warm the connection
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        summarise(read_totals(client, NOW_MINUTE, minutes), [])
        times.append((time.perf_counter() - started) * 1000.0)
    client.config_resetstat()
    sends = []
    connection = client.connection_pool.get_connection()
    original = connection.send_packed_command

    def counting(command: object, check_health: bool = True) -> None:
        sends.append(1)
        original(command, check_health)  # type: ignore[no-untyped-call]

    connection.send_packed_command = counting  # type: ignore[method-assign]
    client.connection_pool.release(connection)
    tracemalloc.start()
    totals = read_totals(client, NOW_MINUTE, minutes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    connection.send_packed_command = original  # type: ignore[method-assign]
    calls = client.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0)
    times.sort()
    return {"median": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))],
            "peak_kb": peak / 1024, "hgetall": calls, "sends": len(sends),
            "classes": len(totals.classes), "hashes": totals.hashes_found}


def beside_the_tick(port: int, repeats: int) -> dict[str, float]:
    """Median ms of a tick's collect() alone and with the job-metrics read after it."""
    client = redis.Redis(host="127.0.0.1", port=port, db=2, decode_responses=True)
    snapshot_bench.fill_scale_db(client, 2, 300, 5000, random.Random(7))
    fill(client, 150, 15)
    collector = Collector(Config(), client=client)
    collector.collect()
    read_totals(client, NOW_MINUTE, 15)
    alone, with_read, read_only = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        collector.collect()
        alone.append((time.perf_counter() - started) * 1000.0)
        started = time.perf_counter()
        collector.collect()
        middle = time.perf_counter()
        summarise(read_totals(client, NOW_MINUTE, 15), [])
        ended = time.perf_counter()
        with_read.append((ended - started) * 1000.0)
        read_only.append((ended - middle) * 1000.0)
    return {"alone": statistics.median(alone), "with": statistics.median(with_read),
            "read": statistics.median(read_only)}


def main() -> None:
    """Run the benchmark and print a Markdown report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 5 if args.quick else 30
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="jobmetrics-bench-")
    server = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                               "--save", "", "--appendonly", "no", "--dir", workdir],
                              stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        version = redis.Redis(port=port).info("server")["redis_version"]
        rows = []
        for db, classes in ((0, 150), (1, 2000)):
            client = redis.Redis(host="127.0.0.1", port=port, db=db, decode_responses=True)
            fill(client, classes, 60)
            reply_bytes = sum(int(client.memory_usage(minute_keys(NOW_MINUTE - b)[0]) or 0)
                              for b in range(1, 61))
            for minutes in (15, 60):
                result = measure(client, minutes, repeats)
                rows.append((classes, minutes, result, reply_bytes * minutes // 60))
        print(f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"Python {platform.python_version()}, redis-py {redis.__version__}, "
              f"Redis {version}; {repeats} reads per row, warm connection")
        print()
        print("| classes | minutes | hashes read | HGETALL per read | socket sends per read "
              "| median ms | p95 ms | Python peak KB | Redis memory of the hashes read |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for classes, minutes, r, size in rows:
            print(f"| {classes:,} | {minutes} | {r['hashes']:.0f} | {r['hgetall']:.0f} "
                  f"| {r['sends']:.0f} | {r['median']:.1f} | {r['p95']:.1f} "
                  f"| {r['peak_kb']:,.0f} | {size / 1024:,.0f} KB |")
        tick = beside_the_tick(port, repeats)
        print()
        print("Beside the tick (300 processes, 5,000 jobs, 150 classes by 15 minutes; "
              "medians, alternating):")
        print()
        print("| tick's collect() alone | collect() + metrics read | the read | ratio |")
        print("|---:|---:|---:|---:|")
        print(f"| {tick['alone']:.1f} ms | {tick['with']:.1f} ms | {tick['read']:.1f} ms "
              f"| {tick['with'] / tick['alone']:.2f}x |")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
