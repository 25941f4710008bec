"""How long a tick's collect waits for 20 node_exporters, with none or one of them hanging.

Run: ``.venv/bin/python bench/exporters_bench.py [--rounds 10] [--timeout 2] [--write]``.

A child process serves 20 loopback "node_exporters" (one port each), every
one answering ``/metrics`` with the recorded output of Debian's real
prometheus-node-exporter 1.5.0 (tests/fixtures/node_exporter-1.5.0.txt,
57 KB); ``/hang`` accepts the request and never answers. The servers live in
another process so they do not share the bot's interpreter lock. A throwaway
redis-server on loopback (empty) is what ``Collector.collect()`` reads beside
them, with this host's psutil reading, as in a real tick.

Scenarios, taken in turn every round, the order rotated (so that noise hits them alike):
no ``[[hosts]]``; 20 good exporters; 19 good and 1 hanging (``timeout``
seconds each). Times are wall clock around ``Collector.collect()``
(``time.perf_counter``). The claim to check: with one hanging, a collect
takes at most the timeout plus the 0-hanging time, not 20 timeouts and not
the timeout plus 19 sequential reads. ``--write`` replaces the section
``## node_exporters: a tick with one hanging (issue 11)`` in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import snapshot_bench

from bot.collect import Collector
from bot.config import Config, HostEntry, RedisConfig

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "node_exporter-1.5.0.txt"
RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "## node_exporters: a tick with one hanging (issue 11)"
EXPORTERS = 20


def serve(count: int) -> None:
    """Serve ``count`` exporters on free loopback ports; print the ports; run until stdin closes."""
    body = FIXTURE.read_bytes()
    stop = threading.Event()

    class Handle(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/hang":
                stop.wait()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the bot cutting /hang at its timeout

    servers = [Server(("127.0.0.1", 0), Handle) for _ in range(count)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(" ".join(str(s.server_address[1]) for s in servers), flush=True)
    sys.stdin.read()
    stop.set()


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start an empty redis-server on a free loopback port; return it and its URL."""
    from bot.demo import free_port

    port = free_port()
    process = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                               stdout=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}/0"


def summary(times: list[float]) -> tuple[float, float, float]:
    """Return the median, the largest and the smallest time, in seconds."""
    return statistics.median(times), max(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=2.0, help="[[hosts]] timeout, seconds")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(EXPORTERS)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdin is not None
    ports = [int(p) for p in child.stdout.readline().split()]
    workdir = Path(tempfile.mkdtemp(prefix="exporters-bench-"))
    redis_process, url = start_redis(workdir)
    began = time.perf_counter()
    try:
        redis_config = RedisConfig(url=url)

        def hosts(hanging: int) -> tuple[HostEntry, ...]:
            return tuple(
                HostEntry(name=f"host{i:02d}", timeout=args.timeout,
                          node_exporter=f"http://127.0.0.1:{port}/"
                                        f"{'hang' if i < hanging else 'metrics'}")
                for i, port in enumerate(ports))

        scenarios = {
            "no [[hosts]]": Config(redis=redis_config),
            f"{EXPORTERS} exporters, 0 hanging": Config(redis=redis_config, hosts=hosts(0)),
            f"{EXPORTERS} exporters, 1 hanging": Config(redis=redis_config, hosts=hosts(1)),
        }
        collectors = {name: Collector(config) for name, config in scenarios.items()}
        errors: dict[str, set[str]] = {name: set() for name in scenarios}
        for collector in collectors.values():
            collector.collect()  # warm: connections, psutil's CPU priming
        times: dict[str, list[float]] = {name: [] for name in scenarios}
        for round_ in range(args.rounds):
            order = list(collectors.items())
            order = order[round_ % len(order):] + order[:round_ % len(order)]
            for name, collector in order:
                start = time.perf_counter()
                snapshot = collector.collect()
                times[name].append(time.perf_counter() - start)
                assert snapshot.redis.reachable
                errors[name] |= {h.error.split(" ", 1)[1] for h in snapshot.hosts if h.error}
                good = sum(h.stats is not None for h in snapshot.hosts)
                expected = 0 if name == "no [[hosts]]" else EXPORTERS - ("1 hanging" in name)
                assert good == expected, (name, good, [h.error for h in snapshot.hosts])
        for collector in collectors.values():
            collector.close()
    finally:
        child.stdin.close()
        child.wait(10)
        redis_process.terminate()
        redis_process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - began

    base = statistics.median(times[f"{EXPORTERS} exporters, 0 hanging"])
    rows = ["| Scenario | timeout (s) | collect median (s) | max (s) | min (s) | "
            "max minus timeout (s) | errors seen |",
            "|---|---:|---:|---:|---:|---:|---|"]
    for name, values in times.items():
        median, largest, smallest = summary(values)
        over = f"{largest - args.timeout:+.3f}" if "1 hanging" in name else ""
        rows.append(f"| {name} | {args.timeout:g} | {median:.3f} | {largest:.3f} | "
                    f"{smallest:.3f} | {over} | {'; '.join(sorted(errors[name])) or '-'} |")
    hanging = times[f"{EXPORTERS} exporters, 1 hanging"]
    bound = args.timeout + max(times[f"{EXPORTERS} exporters, 0 hanging"])
    verdict = "met" if max(hanging) <= bound else "NOT met"
    section = "\n".join([
        HEADING, "",
        f"Command: `.venv/bin/python bench/exporters_bench.py --rounds {args.rounds} "
        f"--timeout {args.timeout:g} --write`", "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC (the run took {elapsed:.0f} s)",
        f"- Machine: {psutil.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        f"- {EXPORTERS} loopback exporters in a child process, each serving the recorded "
        f"output of Debian's prometheus-node-exporter 1.5.0 ({FIXTURE.stat().st_size:,} bytes); "
        f"an empty redis-server; this host's psutil reading; {args.rounds} rounds, the "
        f"scenarios in turn (rotated every round)", "",
        *rows, "",
        f"Requirement: with one exporter hanging the tick is delayed by at most its timeout. "
        f"**{verdict}**: the slowest collect with one hanging took {max(hanging):.3f} s, "
        f"against the timeout {args.timeout:g} s plus the slowest 0-hanging collect "
        f"({bound:.3f} s). The 0-hanging median is {base:.3f} s for {EXPORTERS} exporters "
        f"read at once (each parsed with prometheus_client in its own thread, sharing the "
        f"interpreter lock); read one after another with one hanging, the same tick would "
        f"take the timeout plus 19 reads.", ""])
    print(section)
    if args.write:
        snapshot_bench.write_section(section, HEADING, RESULTS)


if __name__ == "__main__":
    main()
