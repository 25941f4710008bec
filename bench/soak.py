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
import dataclasses
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


@dataclasses.dataclass
class Variant:
    """One bot under test: its interpreter, its optimisation level and what it did."""

    python: str
    optimize: int
    version: str = ""
    samples: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    ticks: int = 0
    status: int | None = None
    log: str = ""
    maps: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    @property
    def flag(self) -> str:
        """The interpreter flag that matches ``optimize``: ``""``, `` -O`` or `` -OO``."""
        return {0: "", 1: " -O"}.get(self.optimize, " -OO")

    @property
    def label(self) -> str:
        """A short column name, e.g. ``3.11 -OO``."""
        return f"{self.version.rsplit('.', 1)[0]}{self.flag}"


def mappings(pid: int) -> dict[str, int]:
    """Return the process's resident kB per kind of mapping (``/proc/PID/smaps``).

    Kinds: ``[heap]`` (the main arena), ``[anon]`` (other malloc arenas, mmap'ed
    blocks, Python's obmalloc arenas), ``[stack]``, and each file by its base name.
    """
    kinds: dict[str, int] = {}
    kind = "[anon]"
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return kinds
    for line in text.splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else "[anon]"
            kind = name if name.startswith("[") else Path(name).name
        elif fields and fields[0] == "Rss:":
            kinds[kind] = kinds.get(kind, 0) + int(fields[1])
    return kinds


def grew(variant: Variant) -> str:
    """Return the mappings whose RSS changed between the marks, largest first."""
    first, last = variant.maps.get("third", {}), variant.maps.get("end", {})
    changes = sorted(((last.get(k, 0) - first.get(k, 0), k) for k in {*first, *last}),
                     key=lambda change: -abs(change[0]))
    return ", ".join(f"{name} {kb:+d} kB" for kb, name in changes[:5] if kb) or "nothing"


def python_version(python: str) -> str:
    """Return the version of the interpreter ``python`` (e.g. ``3.11.7``)."""
    out = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def run(minutes: float, workdir: Path, variants: list[Variant]) -> None:
    """Run every variant's bot at once, each against its own servers; fill in what they did.

    The bots run side by side so that a noisy machine affects them alike.
    ``optimize`` 2 runs the bot as the Dockerfile and the systemd unit do
    (``PYTHONOPTIMIZE=2``: no docstrings in memory).
    """
    bots: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        try:
            watched = []
            for n, variant in enumerate(variants):
                home = workdir / f"bot{n}"
                home.mkdir()
                config = stack.enter_context(servers(home))
                env = {**os.environ, TOKEN_ENV: TOKEN, "PYTHONOPTIMIZE": str(variant.optimize)}
                if not variant.optimize:
                    env.pop("PYTHONOPTIMIZE")
                with (home / "bot.log").open("wb") as log:
                    bots.append(subprocess.Popen(
                        [variant.python, "-m", "bot", "run", "--config", str(config)],
                        env=env, stdout=log, stderr=subprocess.STDOUT))
                watched.append(psutil.Process(bots[-1].pid))
            started = time.monotonic()
            end = started + minutes * 60
            next_at = started + SAMPLE_EVERY
            while time.monotonic() < end:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += SAMPLE_EVERY
                at_s = time.monotonic() - started
                line = []
                running = zip(variants, bots, watched, strict=True)
                for n, (variant, bot, process) in enumerate(running):
                    if bot.poll() is not None:
                        raise RuntimeError(
                            f"the bot {variant.label} exited ({bot.returncode}):\n"
                            + (workdir / f"bot{n}" / "bot.log").read_text(errors="replace")[-3000:])
                    mb = process.memory_info().rss / MB
                    variant.samples.append((at_s, mb))
                    if "third" not in variant.maps and at_s >= minutes * 20:
                        variant.maps["third"] = mappings(process.pid)
                    variant.maps["end"] = mappings(process.pid)
                    line.append(f"{variant.label}: {mb:6.2f} MB")
                print(f"{at_s:7.0f} s  " + "   ".join(line), flush=True)
            for bot in bots:
                bot.send_signal(signal.SIGTERM)
            for n, (variant, bot) in enumerate(zip(variants, bots, strict=True)):
                variant.status = bot.wait(30)
                variant.ticks = ticks_recorded(workdir / f"bot{n}" / "state")
                variant.log = (workdir / f"bot{n}" / "bot.log").read_text(errors="replace")
        finally:
            for bot in bots:
                if bot.poll() is None:
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


def report_lines(args: argparse.Namespace, variants: list[Variant],
                 began: time.struct_time) -> list[str]:
    """Return the RESULTS.md section: set-up, one summary line per bot, the table."""
    length = variants[0].samples[-1][0]
    expected = length / INTERVAL
    command = ".venv/bin/python bench/soak.py" + (
        f" --minutes {args.minutes:g}" if args.minutes != 30 else "") + "".join(
        f" --python {python}" for python in (args.python or [])) + (
        f" --optimize {args.optimize}" if args.optimize != "0,2" else "") + " --write"
    cpu = platform.processor() or platform.machine()
    lines = [
        HEADING,
        "",
        f"Command: `{command}`",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', began)}, {length / 60:.1f} minutes; "
        f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}; the machine was "
        "shared with other work. The bots below ran at the same time, side by side.",
        "- Set-up: `python -m bot run --config ...` as a subprocess, each against its own "
        f"redis-server and mastodon-mock on loopback: interval {INTERVAL} s, commands on "
        "(user stream connected), history recorded, health probes on; a backlog of "
        f"{BACKLOG} jobs on `push` with one live process heartbeat that never works it, so "
        "the incident opened at the start stays open (critical, latency growing). `-OO` is "
        "`PYTHONOPTIMIZE=2`, as the Dockerfile and `dist/statusbot.service` run the bot.",
        "- RSS: `psutil` `memory_info().rss`, MB = 10^6 bytes, sampled every "
        f"{SAMPLE_EVERY:.0f} s; slope: least squares over the last two thirds of the run.",
        "",
        "| Python | ticks | exit | errors in log | seen | 1 min | 10 min | end | max "
        "| slope (MB/min) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for variant in variants:
        samples = variant.samples
        tail = [s for s in samples if s[0] >= length / 3]
        errors = [line for line in variant.log.splitlines()
                  if " ERROR " in line or "Traceback" in line]
        seen = ("incident" if " opened: " in variant.log else "NO incident") + ", " + (
            "stream" if "mention stream connected" in variant.log else "NO stream")
        lines.append(
            f"| {variant.version}{variant.flag} "
            f"| {variant.ticks} ({variant.ticks / expected:.0%}) | {variant.status} "
            f"| {len(errors)} | {seen} | {at(samples, 60):.2f} | {at(samples, 600):.2f} "
            f"| {samples[-1][1]:.2f} | **{max(mb for _, mb in samples):.2f}** "
            f"| {slope(tail):+.4f} |")
    lines += ["", "Resident memory that changed over the last two thirds, by mapping "
              "(`/proc/PID/smaps`; `[anon]` is malloc's other arenas, mmap'ed blocks and "
              "Python's object arenas):", ""]
    lines += [f"- {variant.label}: {grew(variant)}" for variant in variants]
    lines += [
        "",
        "Every minute (the full 10 s series is printed while it runs), RSS in MB:",
        "",
        "| minute | " + " | ".join(v.label for v in variants) + " |",
        "|---:|" + "---:|" * len(variants),
    ]
    for n, (t, _) in enumerate(variants[0].samples):
        if round(t) % 60 < SAMPLE_EVERY:
            lines.append(f"| {t / 60:.1f} | " + " | ".join(
                f"{v.samples[n][1]:.2f}" for v in variants if n < len(v.samples)) + " |")
    return [*lines, ""]


def main() -> int:
    """Run the soak and print (or write) the table and summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    parser.add_argument("--python", action="append", metavar="PATH",
                        help="an interpreter that runs the bot, e.g. a venv with only "
                        "statusbot installed, as deployed (repeatable; default: this one)")
    parser.add_argument("--optimize", default="0,2", metavar="LEVELS",
                        help="PYTHONOPTIMIZE levels to run each interpreter with, side by "
                        "side (default 0,2: plain, and as the Dockerfile and systemd unit run it)")
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
    pythons = args.python or [sys.executable]
    levels = [int(level) for level in args.optimize.split(",")]
    variants = [Variant(python, level, python_version(python))
                for python in pythons for level in levels]
    began = time.gmtime()
    try:
        run(args.minutes, workdir, variants)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines = report_lines(args, variants, began)
    text = "\n".join(lines)
    print(text)
    for variant in variants:
        errors = [line for line in variant.log.splitlines()
                  if " ERROR " in line or "Traceback" in line]
        if errors:
            print(f"{variant.label}:", *errors[:20], sep="\n")
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
