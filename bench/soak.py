"""Resident memory of ``statusbot run`` over a long run: the soak.

Starts a throwaway redis-server and mastodon-mock on free loopback ports,
seeds a Sidekiq-like backlog on ``push`` that nobody works (one fake process
heartbeat serves the queue but never takes a job, so the oldest job only gets
older and the incident opened at the start stays open), writes a config with
commands on (the user stream connected), history on and a 0.5 s interval,
and runs ``python -m bot run --config ...`` as a subprocess, the way a user
runs it. Its RSS (``psutil``) is sampled every 10 s; at the end the bot gets
SIGTERM, the raw history samples it recorded are counted (one per tick), and
the servers are stopped and removed.

    .venv/bin/python bench/soak.py [--minutes 30] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import redis

from bot import defaults
from bot.demo import free_port, wait_until

TOKEN = "soak-bot-token"  # noqa: S105 - the throwaway server's seeded token
TOKEN_ENV = "STATUSBOT_SOAK_TOKEN"  # noqa: S105 - the name of a variable, not a secret
HEADING = "## Memory over a long run (soak)"
SAMPLE_EVERY = 10.0
INTERVAL = 0.5
BACKLOG = 500
MB = 1_000_000


def seed_backlog(client: redis.Redis) -> None:
    """Push a backlog onto ``push``, enqueued ten minutes ago (the demo Redis only)."""
    then = time.time() - 600
    client.sadd("queues", "push", "default")
    pipe = client.pipeline()
    for n in range(BACKLOG):
        pipe.lpush("queue:push", json.dumps({
            "class": "ActivityPub::DeliveryWorker", "queue": "push", "args": [n],
            "jid": secrets.token_hex(12), "retry": 16, "created_at": then,
            "enqueued_at": then}))
    pipe.set("stat:processed", 1000)
    pipe.set("stat:failed", 3)
    pipe.execute()


class Heartbeat(threading.Thread):
    """One Sidekiq 7 process heartbeat, refreshed every 5 s; it never takes a job."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True, name="soak-heartbeat")
        self.client = client
        self.stop = threading.Event()
        self.identity = f"soak-worker:{os.getpid()}:{secrets.token_hex(6)}"

    def run(self) -> None:
        """Beat until stopped."""
        info = json.dumps({"hostname": "soak-worker", "pid": os.getpid(), "tag": "mastodon",
                           "started_at": time.time(), "concurrency": 5,
                           "queues": ["push", "default"], "labels": [],
                           "identity": self.identity, "version": "7.3.9"})
        while True:
            try:
                self.client.sadd("processes", self.identity)
                self.client.hset(self.identity, mapping={
                    "info": info, "busy": 0, "beat": time.time(), "quiet": "false",
                    "rss": 300_000, "rtt_us": 100})
                self.client.expire(self.identity, 60)
            except redis.RedisError:
                pass
            if self.stop.wait(5.0):
                return


def config_text(redis_port: int, api: str, state: Path) -> str:
    """Return the bot's config: commands over the stream, history, 0.5 s ticks."""
    return f"""
[redis]
url = "redis://127.0.0.1:{redis_port}/0"
socket_timeout = 2

[bot]
interval = {INTERVAL}
state_dir = "{state}"

[mastodon]
api_base_url = "{api}"
access_token_env = "{TOKEN_ENV}"
admins = ["ops"]
request_timeout = 5
retry_after = 2
retry_max = 8

[posts]
status_every = 0
profile_field = true

[commands]
enabled = true
stream = true

[health.queue_latency.push]
warning = 2
critical = 4
for = 0
clear = 1
clear_for = 1
"""


def mock_up(api: str) -> bool:
    """Return whether mastodon-mock answers /health."""
    try:
        with urllib.request.urlopen(api + "/health", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def slope(samples: list[tuple[float, float]]) -> float:
    """Return the least-squares slope of (seconds, MB) in MB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    den = sum((t - mean_t) ** 2 for t, _ in samples)
    num = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return num / den * 60 if den else 0.0


def at(samples: list[tuple[float, float]], seconds: float) -> float:
    """Return the RSS of the first sample taken at or after ``seconds`` (else the last)."""
    for t, mb in samples:
        if t >= seconds - 1:
            return mb
    return samples[-1][1]


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it), leaving the rest alone."""
    results = Path(__file__).with_name("RESULTS.md")
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    if HEADING in old:
        before, rest = old.split(HEADING, 1)
        after = rest[rest.index("\n## "):] if "\n## " in rest else "\n"
        new = before + text.rstrip() + "\n" + after
    else:
        new = old.rstrip() + "\n\n" + text.rstrip() + "\n"
    results.write_text(new)


def ticks_recorded(state: Path) -> int:
    """Return how many raw history samples the bot recorded (one per tick)."""
    db = sqlite3.connect(f"file:{state / defaults.STATE_FILE}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM samples_raw").fetchone()[0])
    finally:
        db.close()


@contextlib.contextmanager
def servers(workdir: Path) -> Iterator[Path]:
    """Start redis-server, mastodon-mock and the heartbeat, seed the backlog; yield the config."""
    processes: list[subprocess.Popen[bytes]] = []
    heartbeat: Heartbeat | None = None
    try:
        redis_port, mock_port = free_port(), free_port()
        processes.append(subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL))
        (workdir / "mock.toml").write_text(
            '[database]\npath = ":memory:"\n'
            f'[[seed.accounts]]\nusername = "statusbot"\naccess_token = "{TOKEN}"\n'
            '[[seed.accounts]]\nusername = "ops"\nrole = "admin"\naccess_token = "ops-token"\n')
        with (workdir / "mock.log").open("wb") as sink:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "mastodon_mock", "serve", "--in-memory", "--host",
                 "127.0.0.1", "--port", str(mock_port), "--config", str(workdir / "mock.toml"),
                 "--log-level", "warning"], stdout=sink, stderr=subprocess.STDOUT, cwd=workdir))
        client = redis.Redis(port=redis_port, decode_responses=True, socket_timeout=5)
        wait_until(lambda: bool(client.ping()), 10, "redis-server")
        api = f"http://127.0.0.1:{mock_port}"
        wait_until(lambda: mock_up(api), 30, "mastodon-mock")
        seed_backlog(client)
        heartbeat = Heartbeat(client)
        heartbeat.start()
        config = workdir / "statusbot.toml"
        config.write_text(config_text(redis_port, api, workdir / "state"))
        yield config
    finally:
        if heartbeat is not None:
            heartbeat.stop.set()
            heartbeat.join(5)
        for process in processes:
            process.kill()
            process.wait(10)


def run(minutes: float, workdir: Path, python: str = sys.executable,
        ) -> tuple[list[tuple[float, float]], int, int, str]:
    """Run the soak; return the samples, the ticks, the bot's exit status and its log."""
    bot: subprocess.Popen[bytes] | None = None
    samples: list[tuple[float, float]] = []
    log_path = workdir / "bot.log"
    with servers(workdir) as config:
        try:
            with log_path.open("wb") as log:
                bot = subprocess.Popen(
                    [python, "-m", "bot", "run", "--config", str(config)],
                    env={**os.environ, TOKEN_ENV: TOKEN}, stdout=log, stderr=subprocess.STDOUT)
            watched = psutil.Process(bot.pid)
            started = time.monotonic()
            end = started + minutes * 60
            next_at = started + SAMPLE_EVERY
            while time.monotonic() < end:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += SAMPLE_EVERY
                if bot.poll() is not None:
                    raise RuntimeError(f"the bot exited ({bot.returncode}):\n"
                                       + log_path.read_text(errors="replace")[-3000:])
                mb = watched.memory_info().rss / MB
                samples.append((time.monotonic() - started, mb))
                print(f"{samples[-1][0]:7.0f} s  {mb:6.2f} MB", flush=True)
            bot.send_signal(signal.SIGTERM)
            status = bot.wait(30)
            return (samples, ticks_recorded(workdir / "state"), status,
                    log_path.read_text(errors="replace"))
        finally:
            if bot is not None and bot.poll() is None:
                bot.kill()
                bot.wait()


def trace(ticks: int, every: float, workdir: Path) -> None:
    """Run the bot in this process for ``ticks`` ticks; print what grew (tracemalloc)."""
    import logging
    import tracemalloc

    from bot.app import build
    from bot.config import load_config

    logging.basicConfig(level=logging.WARNING)
    with servers(workdir) as config_path:
        os.environ[TOKEN_ENV] = TOKEN
        config = load_config(str(config_path))
        tracemalloc.start(12)
        bot = build(config, out=sys.stdout)
        stop = threading.Event()
        marks = {ticks // 4: "first", ticks - 1: "last"}
        shots: dict[str, tracemalloc.Snapshot] = {}
        count = 0
        me = psutil.Process()

        def on_tick(report: object) -> None:
            nonlocal count
            del report
            if count in marks:
                gc.collect()
                shots[marks[count]] = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)])
                print(f"tick {count}: traced {tracemalloc.get_traced_memory()[0] / MB:.2f} MB, "
                      f"RSS {me.memory_info().rss / MB:.2f} MB", flush=True)
            count += 1

        bot.run(every, stop, on_tick=on_tick, max_ticks=ticks)
        bot.store.close()
        for group in ("filename", "lineno", "traceback"):
            diff = shots["last"].compare_to(shots["first"], group)
            print(f"Top growth from tick {ticks // 4} to {ticks - 1}, by {group}:")
            for stat in diff[:15 if group != "traceback" else 6]:
                print(f"{stat.size_diff / 1000:+9.1f} kB {stat.count_diff:+6d} blocks  "
                      f"{stat.traceback[0] if group != 'traceback' else ''}")
                if group == "traceback":
                    for line in stat.traceback.format(limit=10):
                        print("    " + line)


def main() -> int:
    """Run the soak and print (or write) the table and summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that runs the bot (e.g. a venv with only "
                        "statusbot installed, as deployed; default: this one)")
    parser.add_argument("--trace", type=int, metavar="TICKS",
                        help="instead: run TICKS ticks in this process and print what grew "
                        "between the first quarter and the end (tracemalloc)")
    parser.add_argument("--trace-every", type=float, default=0.05, metavar="SECONDS",
                        help="the tick interval with --trace (default 0.05)")
    args = parser.parse_args()

    def interrupted(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    # SIGTERM (and SIGINT when started in the background) must still stop the servers.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="statusbot-soak-"))
    if args.trace:
        try:
            trace(args.trace, args.trace_every, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    began = time.gmtime()
    try:
        samples, ticks, status, log = run(args.minutes, workdir, args.python)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    length = samples[-1][0]
    tail = [s for s in samples if s[0] >= length / 3]
    expected = length / INTERVAL
    seen = ("incident opened" if " opened: " in log else "NO incident opened") + ", " + (
        "user stream connected" if "mention stream connected" in log else "NO user stream")
    summary = {
        "1 min": at(samples, 60), "10 min": at(samples, 600), "end": samples[-1][1],
        "max": max(mb for _, mb in samples),
        "slope": slope(tail),
    }
    rows = [f"| {t / 60:.1f} | {mb:.2f} |" for t, mb in samples if round(t) % 60 < SAMPLE_EVERY]
    errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    command = ".venv/bin/python bench/soak.py" + (
        f" --minutes {args.minutes:g}" if args.minutes != 30 else "") + (
        f" --python {args.python}" if args.python != sys.executable else "") + " --write"
    cpu = platform.processor() or platform.machine()
    lines = [
        HEADING,
        "",
        f"Command: `{command}`",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', began)}, {length / 60:.1f} minutes; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs ({cpu}), "
        f"Linux {platform.release()}; the machine was shared with other work.",
        "- Set-up: `python -m bot run --config ...` as a subprocess against redis-server and "
        f"mastodon-mock on loopback: interval {INTERVAL} s, commands on (user stream "
        "connected), history recorded, health probes on; a backlog of "
        f"{BACKLOG} jobs on `push` with one live process heartbeat that never works it, so "
        "the incident opened at the start stays open (critical, latency growing).",
        f"- Ticks: {ticks} recorded in {length:.0f} s ({ticks / expected:.1%} of "
        f"{expected:.0f} at {INTERVAL} s); exit status {status} after SIGTERM; "
        f"{len(errors)} error lines in the bot's log; from its log: {seen}.",
        f"- RSS (`psutil` `memory_info().rss`, MB = 10^6 bytes), sampled every "
        f"{SAMPLE_EVERY:.0f} s: at 1 min **{summary['1 min']:.2f}**, at 10 min "
        f"**{summary['10 min']:.2f}**, at the end **{summary['end']:.2f}**, max "
        f"**{summary['max']:.2f}**; least-squares slope over the last two thirds "
        f"({tail[0][0] / 60:.0f}-{length / 60:.0f} min, {len(tail)} samples): "
        f"**{summary['slope']:+.4f} MB/min**.",
        "",
        "Every minute (the full 10 s series is printed while it runs):",
        "",
        "| minute | RSS (MB) |",
        "|---:|---:|",
        *rows,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if errors:
        print("\n".join(errors[:20]))
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
