"""How long a standby takes to lead after the leader is SIGKILLed (issue 11: within two intervals).

Run: ``.venv/bin/python bench/standby_bench.py [--runs 5] [--interval 0.5 --interval 2] [--write]``.

A throwaway redis-server on loopback with the README's agent user; two
``statusbot run`` processes with ``[bot] standby = true``, each with its own
state directory, printing their posts (no ``[mastodon]``: nothing leaves the
machine). Once the first holds ``statusbot:leader`` and the second's
heartbeat says ``standby``, the first is SIGKILLed and the lease is polled
every 5 ms until it holds the second's id. The time from the kill to that
moment is the takeover. The lease lives two intervals from the leader's last
renewal, so the takeover is at most two intervals after the kill (plus the
standby's own tick); the killed leader's last renewal came up to one
interval before the kill, hence times between one and two intervals.
``--write`` replaces the section ``## Standby takeover (issue 11)`` in
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import redis
import snapshot_bench
from exporters_bench import start_redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.defaults import LEADER_KEY
from bot.loop import heartbeat_role
from tests.integration.servers import readme_acl

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "## Standby takeover (issue 11)"
PASSWORD = "bench-agent-pw"  # noqa: S105 - a throwaway server's user, for this run only


def redis_version() -> str:
    """Return redis-server's version, e.g. 7.0.15."""
    text = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                          check=False).stdout
    found = re.search(r"v=(\S+)", text)
    return found.group(1) if found else "unknown"


def wait(condition: object, seconds: float, what: str) -> None:
    """Poll ``condition`` (a callable) every 5 ms for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.005)
    sys.exit(f"timed out waiting for {what}")


def holds(client: redis.Redis, process: subprocess.Popen[bytes]) -> bool:
    """Whether the lease's id (hostname:pid:random) names ``process``."""
    value = client.get(LEADER_KEY)
    return value is not None and str(value).split(":")[-2] == str(process.pid)


def one_takeover(workdir: Path, url: str, interval: float, client: redis.Redis) -> float:
    """Start a leader and a standby, SIGKILL the leader; return the seconds to the takeover."""
    bots: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("a", "b"):
            state = workdir / name
            shutil.rmtree(state, ignore_errors=True)
            state.mkdir()
            config = workdir / f"{name}.toml"
            config.write_text(f'[redis]\nurl = "{url}"\n[bot]\ninterval = {interval}\n'
                              f'state_dir = "{state}"\nstandby = true\n'
                              f'[agent]\npassword_env = "BENCH_AGENT_PW"\n'
                              f'[posts]\nstatus_every = 0\nprofile_field = false\n'
                              f'[reports]\nweekly = "off"\nmonthly = "off"\n')
            env = {**os.environ, "BENCH_AGENT_PW": PASSWORD}
            with (workdir / f"{name}.log").open("wb") as log:
                bots.append(subprocess.Popen(
                    [sys.executable, "-m", "bot", "run", "--config", str(config)],
                    stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT))
            if name == "a":
                wait(lambda: holds(client, bots[0]), 30, "the first bot to take the lease")
        wait(lambda: heartbeat_role(workdir / "b" / "last-tick") == "standby", 30,
             "the second bot to stand by")
        time.sleep(2 * interval)  # a few ticks side by side
        leader, standby = bots
        leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait(lambda: holds(client, standby), 10 + 4 * interval, "the takeover")
        return time.monotonic() - killed
    finally:
        for bot in bots:
            if bot.poll() is None:
                bot.kill()
            bot.wait(10)
        client.delete(LEADER_KEY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", type=float, action="append", default=[])
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    intervals = args.interval or [0.5, 2.0]
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="standby-bench-"))
    redis_process, url = start_redis(workdir)
    began = time.perf_counter()
    results: dict[float, list[float]] = {}
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        client.execute_command(*readme_acl("statusbot-agent", PASSWORD))  # type: ignore[no-untyped-call]
        for interval in intervals:
            results[interval] = [one_takeover(workdir, url, interval, client)
                                 for _ in range(args.runs)]
        client.close()
    finally:
        redis_process.terminate()
        redis_process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - began
    rows = ["| interval (s) | lease (s) | runs | takeover median (s) | min (s) | max (s) | "
            "max / interval | within two intervals |",
            "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for interval, times in results.items():
        rows.append(f"| {interval:g} | {2 * interval:g} | {len(times)} | "
                    f"{statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} | "
                    f"{max(times) / interval:.2f} | "
                    f"{'yes' if max(times) <= 2 * interval else 'NO'} |")
    intervals_text = " ".join(f"--interval {i:g}" for i in intervals)
    section = "\n".join([
        HEADING, "",
        f"Command: `.venv/bin/python bench/standby_bench.py --runs {args.runs} "
        f"{intervals_text} --write`", "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC (the run took {elapsed:.0f} s)",
        f"- Machine: {psutil.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, redis-server {redis_version()}",
        "- Two `statusbot run` processes with `[bot] standby = true` (own state directories, "
        "posts printed, nothing sent) against one loopback redis-server, the lease written "
        "with the README's agent user. The leader is SIGKILLed after both ran side by side "
        "for two intervals; the lease is polled every 5 ms until it names the standby.", "",
        *rows, "",
        "The lease lives two intervals from the leader's last renewal, which came up to one "
        "interval before the kill: takeovers fall between one and two intervals after it. "
        "The standby asks again the moment the lease's PTTL runs out rather than at its next "
        "tick.", ""])
    print(section)
    if args.write:
        snapshot_bench.write_section(section, HEADING, RESULTS)


if __name__ == "__main__":
    main()
