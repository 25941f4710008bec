"""The ``statusbot`` command line.

Commands: ``run``, ``agent``, ``check``, ``advise``, ``config-check``, ``report``, ``audit``,
``outbox``, ``healthcheck`` and ``demo``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TextIO

from bot import __version__, defaults
from bot.config import Config, ConfigError, load_config, redact_url, state_dir_problem
from bot.model import HostStats, SidekiqStats, Snapshot
from bot.wording import TEXT_LIMIT, neutral

if TYPE_CHECKING:
    from bot.history import History
    from bot.loop import TickReport
    from bot.reporting import Due

log = logging.getLogger("statusbot")

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_CONFIG = 2

CONFIG_ENV = "STATUSBOT_CONFIG"
"""Environment variable naming the config file when ``--config`` is not given."""


TOKENLESS = frozenset({"audit", "healthcheck", "page", "advise", "agent"})
"""Subcommands that post nothing and only read (the state directory, Redis): they work
without the access token."""

ADVISE_WAIT = 30.0
"""Seconds ``advise`` waits between its two snapshots, to measure backlog growth (the
job metrics need at least ``jobmetrics.MIN_SPAN_S``)."""

AUDIT_MAX = 1_000_000
"""The most audit entries ``audit -n`` shows (SQLite takes no bigger LIMIT than 2**63-1)."""


def _audit_limit(text: str) -> int:
    """Read ``audit -n``: a whole number from 1 up; above ``AUDIT_MAX`` it is ``AUDIT_MAX``."""
    digits = text.strip()
    if digits.isdecimal() and len(digits.lstrip("0")) > len(str(AUDIT_MAX)):
        return AUDIT_MAX  # before int(): Python refuses to read over 4300 digits
    try:
        value = int(digits)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return min(value, AUDIT_MAX)


def _wait_seconds(text: str) -> float:
    """Read ``advise --wait``: 0 or 30 up to 600 seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text[:40]!r}") from None
    if not (value == 0 or 30 <= value <= 600):
        raise argparse.ArgumentTypeError(f"must be 0 or from 30 to 600 seconds, got {text[:40]}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statusbot",
        description="Watch a Mastodon instance's Sidekiq and memory, and talk about it.",
    )
    parser.add_argument("--version", action="version", version=f"statusbot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check", help="collect once and print queues, processes, memory and Redis; check "
                      "[[fallback]] tokens (nothing is posted)",
        description="Collect once and print what the bot sees. Exit status: 0 when Redis "
        "was read, 1 when it could not be, 2 for a configuration error.",
    )
    check.add_argument("--config", metavar="PATH",
                       help=f"config file (default: ${CONFIG_ENV}, else embedded defaults)")
    check.add_argument("--json", action="store_true",
                       help="print the snapshot as JSON (schema: docs/snapshot.md)")

    advise = commands.add_parser(
        "advise", help="say which queue is behind, what would help and what sits idle "
                       "(read-only, nothing is posted)",
        description="Read Sidekiq twice, --wait seconds apart (backlog growth), its job "
        "metrics (Sidekiq 7/8; a coarse estimate on 6), the host's memory and, when the "
        "state file exists, 30 days of history; print capacity advice. Exit status: 0 when "
        "Redis was read, 1 when it could not be, 2 for a configuration error.",
    )
    advise.add_argument("--config", metavar="PATH",
                        help=f"config file (default: ${CONFIG_ENV}, else embedded defaults)")
    advise.add_argument("--json", action="store_true",
                        help="print the advice as JSON (schema: docs/advise.md)")
    advise.add_argument("--wait", type=_wait_seconds, default=ADVISE_WAIT, metavar="SECONDS",
                        help=f"seconds between the two readings (default {ADVISE_WAIT:g}; "
                             "0: one reading, backlog growth not measured)")

    run = commands.add_parser(
        "run", help="watch the instance and post about it (the bot's main job)",
        description="Tick every interval: collect, evaluate, post. With no [mastodon] "
        "section posts are printed as members would see them; --dry-run does the same "
        "with a configured instance and keeps no state. SIGTERM or Ctrl-C finish the "
        "current tick, deliver what can be delivered, and exit 0.",
    )
    run.add_argument("--config", metavar="PATH",
                     help=f"config file (default: ${CONFIG_ENV}, else embedded defaults)")
    run.add_argument("--dry-run", action="store_true",
                     help="print posts and decisions instead of sending; keep no state")
    run.add_argument("--once", action="store_true", help="run one tick and exit")
    run.add_argument("-v", "--verbose", action="store_true", help="log every decision")

    agent = commands.add_parser(
        "agent", help="on another host of the instance: write its memory, swap, load and "
                      "disks to Redis every [agent] interval, for the bot to read",
        description="Every [agent] interval, write this host's reading to Redis as "
        "statusbot:host:<name> (expiring after three intervals) and add the name to "
        "statusbot:hosts, logged in as [agent] username. Redis trouble is logged and tried "
        "again next interval. SIGTERM or Ctrl-C stop it; exit 0.",
    )
    agent.add_argument("--config", metavar="PATH",
                       help=f"config file (default: ${CONFIG_ENV}, else embedded defaults)")
    agent.add_argument("--once", action="store_true", help="write one reading and exit "
                       "(exit 1 when it could not be written)")
    agent.add_argument("--retire", action="store_true",
                       help="this host leaves the instance: remove its reading and name from "
                            "Redis so the bot stops expecting it, and exit (remove its "
                            "[[hosts]] entry too, if it has one)")
    agent.add_argument("-v", "--verbose", action="store_true", help="log every write")

    audit = commands.add_parser(
        "audit", help="show the latest admin actions (who, what, when, result)",
    )
    audit.add_argument("--config", metavar="PATH",
                       help=f"config file (default: ${CONFIG_ENV}, else embedded defaults)")
    audit.add_argument("-n", "--limit", type=_audit_limit, default=50,
                       help=f"how many, 1 to {AUDIT_MAX} (default 50)")

    report_cmd = commands.add_parser(
        "report", help="the latest weekly digest or monthly donor report",
        description="Compose the latest weekly digest or monthly report from the bot's "
        "history. With --dry-run it is printed (and the chart written with --out), not "
        "posted; without, it is queued and sent now (once: a scheduled one is not repeated).",
    )
    report_cmd.add_argument("kind", nargs="?", choices=("weekly", "monthly"), default="weekly")
    report_cmd.add_argument("--config", metavar="PATH",
                            help=f"config file (default: ${CONFIG_ENV}, else embedded defaults)")
    report_cmd.add_argument("--dry-run", action="store_true", help="print, do not post")
    report_cmd.add_argument("--out", metavar="FILE.png", help="write the monthly chart here")

    healthcheck = commands.add_parser(
        "healthcheck", help="exit 0 when the running bot completed a tick recently, else 1",
        description="For container health checks: reads the time of the last completed "
        "tick from the state directory; fails when it is older than three intervals "
        f"plus {defaults.HEALTHCHECK_SLACK:.0f} s, or when the bot wrote a problem with it "
        "(its state file was deleted, replaced or found damaged while it runs).",
    )
    healthcheck.add_argument("--config", metavar="PATH",
                             help=f"config file (default: ${CONFIG_ENV}, else embedded defaults)")

    commands.add_parser(
        "demo", help="a two-minute demonstration with throwaway local servers",
        description="Start a throwaway redis-server and a local Mastodon (mastodon-mock), "
        "simulate a Sidekiq backlog that builds and drains, and show the bot's posts as "
        "members see them. Needs redis-server and the [demo] extra.",
    )

    outbox_cmd = commands.add_parser(
        "outbox", help="list queued and failed posts; 'outbox retry' queues failed posts again",
        description="Without an action (or with 'list'): the posts waiting to go out and "
        "those the instance refused, and whether delivery is paused. 'retry' queues the "
        "failed posts again (all, or the KEYs given), e.g. after fixing api_base_url; the "
        "running bot sends them on its next tick. Exit status: 0, or 1 when a KEY given is "
        "not a failed post or the state file cannot be read.",
    )
    outbox_cmd.add_argument("action", nargs="?", choices=("list", "retry"), default="list")
    outbox_cmd.add_argument("keys", nargs="*", metavar="KEY",
                            help="with retry: only these posts (default: every failed post)")
    outbox_cmd.add_argument("--config", metavar="PATH",
                            help=f"config file (default: ${CONFIG_ENV}, else embedded defaults)")

    page_cmd = commands.add_parser(
        "page", help="render the status page once from the state file",
        description="Write the status page (index.html, feed.atom, api/v2/status.json, "
        "api/v2/summary.json) from the state file and the config into [page] dir, or DIR. "
        "Files whose content did not change are left alone; the others are replaced "
        "atomically. Exit status: 0, 1 when the state file cannot be read or a file "
        "cannot be written, 2 for a configuration error.",
    )
    page_cmd.add_argument("--config", metavar="PATH",
                          help=f"config file (default: ${CONFIG_ENV}, else embedded defaults)")
    page_cmd.add_argument("--out", metavar="DIR", help="write here instead of [page] dir")

    config_check = commands.add_parser(
        "config-check", help="validate a config file and check [[fallback]] tokens with their "
                             "servers, posting nothing (exit 0 when valid, 2 when not)",
    )
    config_check.add_argument("path", metavar="PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    level = logging.WARNING
    if args.command in ("run", "agent") or (args.command == "demo"
                                            and os.environ.get("STATUSBOT_DEBUG")):
        level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "config-check":
        return _config_check(args.path)
    if args.command == "demo":
        from bot.demo import run_demo

        return run_demo()
    try:
        config = load_config(args.config or os.environ.get(CONFIG_ENV) or None,
                             need_token=args.command not in TOKENLESS)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"statusbot: configuration error: {exc.source}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "run":
        return _run(config, dry_run=args.dry_run, once=args.once)
    if args.command == "agent":
        return _agent(config, once=args.once, retire=args.retire)
    if args.command == "healthcheck":
        return _healthcheck(config)
    if args.command == "audit":
        return _audit(config, args.limit)
    if args.command == "outbox":
        return _outbox(config, args.action, args.keys)
    if args.command == "report":
        return _report(config, args.kind, dry_run=args.dry_run, out=args.out)
    if args.command == "page":
        return _page(config, args.out)
    try:
        if args.command == "advise":
            return advise_command(config, as_json=args.json, wait=args.wait)
        return _check(config, as_json=args.json)
    except BrokenPipeError:  # e.g. `statusbot check --json | head`
        # As the Python docs advise: point stdout at devnull so the exit flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _run(config: Config, *, dry_run: bool, once: bool) -> int:
    import sqlite3
    import threading

    from bot.app import build, state_path
    from bot.loop import stop_on_signals
    from bot.store import StoreError

    for warning in config.warnings:
        log.warning("%s: %s", config.path, warning)
    problem = None if dry_run else state_dir_problem(config.bot.state_dir)
    if problem is None:
        try:
            bot = build(config, dry_run=dry_run, out=sys.stdout)
        except StoreError as exc:  # damaged, unreadable or impossible: says which file
            problem = str(exc)
        except (OSError, sqlite3.OperationalError) as exc:  # e.g. it vanished since
            problem = f"cannot use {config.bot.state_dir}: {getattr(exc, 'strerror', '') or exc}"
    if problem is not None:
        print(f"statusbot: configuration error: {config.path or 'defaults'}: "
              f"bot.state_dir: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    console = dry_run or not config.mastodon.api_base_url
    where = ("printing posts here" if console
             else f"posting to {redact_url(config.mastodon.api_base_url)}")
    log.info("statusbot %s: every %s, %s; state in %s", __version__,
             duration(config.bot.interval), where,
             "memory (dry run)" if dry_run else state_path(config))

    def show(report: TickReport) -> None:
        if console:
            print(describe_tick(report), flush=True)

    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            bot.run(config.bot.interval, stop, on_tick=show, max_ticks=1 if once else None)
    finally:
        bot.store.close()
    return EXIT_OK


def _agent(config: Config, *, once: bool, retire: bool = False) -> int:
    import threading

    from bot.agent import Agent, AgentError, agent_client, agent_name
    from bot.collect.host import HostReader
    from bot.loop import stop_on_signals

    for warning in config.warnings:
        log.warning("%s: %s", config.path, warning)
    try:
        name = agent_name(config)
    except AgentError as exc:
        print(f"statusbot: configuration error: {config.path or 'defaults'}: agent.name: {exc}",
              file=sys.stderr)
        return EXIT_CONFIG
    where = redact_url(config.redis.url)
    login = (f"as {config.agent.username}" if config.agent.password is not None
             else "without a password (Redis' default user; set [agent] password_file)")
    log.info("statusbot %s agent: %s to %s every %s, %s", __version__, name, where,
             duration(config.agent.interval), login)
    client = agent_client(config.redis, config.agent)
    reader = HostReader(config.host.disk_paths)
    agent = Agent(client, name=name, interval=config.agent.interval, read=reader.read,
                  where=where)
    stop = threading.Event()
    try:
        if retire:
            problem = agent.retire()
            if problem is not None:
                print(f"statusbot: {problem}", file=sys.stderr)
                return EXIT_UNREACHABLE
            print(f"{name}: reading and name removed from {where}; the bot no longer "
                  f"expects this host")
            return EXIT_OK
        if once:
            return EXIT_OK if agent.write_once() is None else EXIT_UNREACHABLE
        with stop_on_signals(stop):
            agent.run(stop)
    except KeyboardInterrupt:  # a second signal while writing
        pass
    finally:
        client.close()
    log.info("agent stopped after %d reading(s)", agent.written)
    return EXIT_OK


def _report(config: Config, kind: str, *, dry_run: bool, out: str | None) -> int:
    import time
    from pathlib import Path

    from bot import report, reporting
    from bot.app import build
    from bot.chart import ChartError, render_chart
    from bot.store import StoreError

    try:
        bot = build(config, dry_run=dry_run, out=sys.stdout)
    except StoreError as exc:
        print(f"statusbot: cannot use the state file: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if bot.history is None:  # a dry run keeps no state: read the real file, if any
            from bot.app import state_path
            from bot.history import History
            from bot.store import Store

            path = state_path(config)
            try:
                store = Store(path) if path.exists() else Store(":memory:")
            except StoreError as exc:
                print(f"statusbot: cannot use the state file: {exc}", file=sys.stderr)
                return EXIT_CONFIG
            bot.history = History(store, interval=config.bot.interval)
        history = bot.history
        now = time.time()
        tz = bot.settings.timezone
        daily = bot.collector.sidekiq.daily_counters
        open_incident = bot.incident_state().open
        if kind == "weekly":
            slot = config.reports.weekly or (0, 9 * 60)
            due = reporting.last_weekly(now, slot, tz)
            weekly = reporting.weekly_figures(history, daily, due, now, open_incident)
            post = reporting.digest_post(weekly, due, now, bot.settings)
        else:
            mslot = config.reports.monthly or (1, 9 * 60)
            due = reporting.last_monthly(now, mslot, tz)
            try:
                members = reporting.active_members(bot.gateway.instance_activity())
            except Exception:
                members = None
            monthly = reporting.monthly_figures(history, daily, due, now, config.reports,
                                                open_incident, members)
            chart_path = Path(out) if out else None
            if chart_path is None and not dry_run and config.reports.chart:
                chart_path = reporting.chart_file(Path(config.bot.state_dir) / "reports", due)
            chart = None
            if chart_path is not None:
                try:
                    chart = render_chart(report.chart_data(monthly, bot.settings), chart_path)
                    print(f"chart written to {chart}", file=sys.stderr)
                except ChartError as exc:
                    print(f"statusbot: no chart: {exc}", file=sys.stderr)
            post = reporting.report_post(monthly, due, now, bot.settings, chart,
                                         bot.gateway.limits().description_limit)
        print(post.text)
        reason = _report_skip_reason(history, due)
        if reason is not None:
            print(f"statusbot: {post.key} would not be posted: {reason}", file=sys.stderr)
        if not dry_run and reason is None:
            bot.store.enqueue([post])
            delivery = bot.outbox.deliver(time.time())
            print(f"queued as {post.key}; sent now: {post.key in delivery.sent}",
                  file=sys.stderr)
    finally:
        bot.store.close()
    return EXIT_OK


def _report_skip_reason(history: History, due: Due) -> str | None:
    """Return why the loop would not post ``due`` (as ``Bot._due_reports`` decides), or None."""
    from bot import reporting
    from bot.loop import REPORTS_STATE

    stored = history.store.get_state(REPORTS_STATE) or {}
    first = stored.get("first_start")
    first_start = float(first) if isinstance(first, (int, float)) \
        and not isinstance(first, bool) else None
    return reporting.skip_reason(due, first_start, history.coverage(due.start, due.end))


def _audit(config: Config, limit: int) -> int:
    from bot.app import state_path
    from bot.mentions import format_audit
    from bot.store import Store, StoreError

    path = state_path(config)
    if not path.exists():
        print(f"no state file at {path}: the bot has not run here yet")
        return EXIT_OK
    try:
        store = Store(path)
    except StoreError as exc:
        print(f"statusbot: cannot read {path}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        entries = store.audit(limit)
    finally:
        store.close()
    print(format_audit(entries) if entries else "no admin action recorded yet")
    return EXIT_OK


def _outbox(config: Config, action: str, keys: Sequence[str]) -> int:
    import time

    from bot.app import state_path
    from bot.outbox import gate_state
    from bot.store import ItemState, Store, StoreError

    if keys and action != "retry":
        print("statusbot outbox: KEYs go with 'retry'", file=sys.stderr)
        return EXIT_CONFIG
    path = state_path(config)
    if not path.exists():
        print(f"no state file at {path}: the bot has not run here yet")
        return EXIT_OK if not keys else EXIT_UNREACHABLE
    try:
        store = Store(path)
    except StoreError as exc:
        print(f"statusbot: cannot read {path}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        if action == "retry":
            requeued = store.requeue_failed(list(keys) if keys else None)
            print(f"queued again: {len(requeued)} failed post(s)"
                  + "".join(f"\n  {_clean(key)}" for key in requeued))
            unknown = [key for key in keys if key not in requeued]
            if unknown:
                print("not failed posts, left as they are: "
                      + ", ".join(_clean(key) for key in unknown), file=sys.stderr)
                return EXIT_UNREACHABLE
            return EXIT_OK
        items = store.items([ItemState.PENDING, ItemState.FAILED])
        gates = {"": store.get_state(gate_state()) or {}}
        for entry in config.fallbacks:
            gates[entry.destination] = store.get_state(gate_state(entry.destination)) or {}
    finally:
        store.close()
    for name, gate in gates.items():
        until = gate.get("until")
        if isinstance(until, (int, float)) and until > time.time():
            where = f" to {name}" if name else ""
            print(f"delivery{where} paused until {_utc(until)}: "
                  f"{_clean(str(gate.get('reason', '')))}")
    if not items:
        print("nothing queued, nothing failed")
    for item in items:
        first_line = (item.post.text.strip().splitlines() or [""])[0]
        print(f"{item.state.value:8} {_clean(item.key)}  {item.post.kind.value}, "
              f"{_utc(item.post.created_at)}, {item.attempts} attempt(s)"
              + (f", last error: {_clean(item.error)[:200]}" if item.error else ""))
        print(f"         {_clean(first_line)[:80]}")
    failed = sum(1 for item in items if item.state is ItemState.FAILED)
    if failed:
        print(f"{failed} failed: 'statusbot outbox retry' queues them again")
    return EXIT_OK


def _page(config: Config, out: str | None) -> int:
    import time

    from bot import page
    from bot.app import heartbeat_path, settings_for, state_path
    from bot.gateway import InstanceLimits
    from bot.history import History
    from bot.incidents import IncidentState
    from bot.loop import INCIDENT_STATE, heartbeat_age
    from bot.pagefiles import (
        PageWriteError,
        configured_mutes,
        gather_live,
        gather_past,
        page_dir_problem,
        site_for,
        write_files,
    )
    from bot.store import Store, StoreError

    directory = out or config.page.dir
    if not directory:
        print("statusbot page: no directory: give --out DIR or set [page] dir",
              file=sys.stderr)
        return EXIT_CONFIG
    problem = page_dir_problem(directory)
    if problem is not None:
        print(f"statusbot page: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    path = state_path(config)
    now = time.time()
    try:
        store = Store(path) if path.exists() else Store(":memory:")
    except StoreError as exc:
        print(f"statusbot: cannot read {path}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        incident = None
        stored = store.get_state(INCIDENT_STATE)
        if stored is not None:
            try:
                incident = IncidentState.from_json(stored).open
            except ValueError as exc:
                print(f"statusbot page: the stored incident is unreadable, not shown: "
                      f"{_clean(str(exc))[:200]}", file=sys.stderr)
        settings = settings_for(config, InstanceLimits())
        instance_url = config.mastodon.api_base_url
        age = heartbeat_age(heartbeat_path(config), now)
        history = History(store, interval=config.bot.interval)
        data = page.PageData(
            site_for(config, settings, store, now),
            gather_live(store, incident, configured_mutes(config, store), instance_url),
            gather_past(store, history, now, settings, instance_url),
            checked_at=None if age is None else now - age)
        written = write_files(directory, page.render(data, now))
    except PageWriteError as exc:
        print(f"statusbot page: {exc.strerror}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        store.close()
    print(f"{directory}: " + (f"wrote {', '.join(written)}" if written else "up to date"))
    return EXIT_OK


def _utc(epoch: float) -> str:
    """Return an epoch time as ``YYYY-MM-DD HH:MM UTC`` (the number itself when out of range)."""
    try:
        return f"{datetime.fromtimestamp(epoch, tz=timezone.utc):%Y-%m-%d %H:%M} UTC"
    except (OverflowError, OSError, ValueError):
        return f"{epoch!r}"


def _clean(text: str) -> str:
    """Return ``text`` with control characters shown as escapes (safe for a terminal)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _healthcheck(config: Config) -> int:
    import time

    from bot.app import heartbeat_path
    from bot.loop import heartbeat_age, heartbeat_problem

    path = heartbeat_path(config)
    age = heartbeat_age(path, time.time())
    limit = 3 * config.bot.interval + defaults.HEALTHCHECK_SLACK
    if age is None:
        print(f"unhealthy: no completed tick recorded in {path}")
        return EXIT_UNREACHABLE
    problem = heartbeat_problem(path)
    if problem is not None:  # before the age: it says why ticks stopped, too
        print(f"unhealthy: {problem}")
        return EXIT_UNREACHABLE
    if age > limit:
        print(f"unhealthy: the last tick completed {duration(age)} ago (limit {duration(limit)})")
        return EXIT_UNREACHABLE
    print(f"healthy: the last tick completed {duration(age)} ago")
    return EXIT_OK


def describe_tick(report: TickReport) -> str:
    """Return one tick's decisions in a few lines (what ``--dry-run`` prints)."""
    when = datetime.fromtimestamp(report.at, tz=timezone.utc)
    lines = [f"[{when:%H:%M:%S}] tick: Redis {'ok' if report.snapshot.redis.reachable else 'DOWN'}"
             f", {len(report.findings)} finding(s), {len(report.events)} event(s), "
             f"{report.new_posts} new post(s)"]
    lines += [f"  finding {neutral(f.component)} {f.severity.name.lower()}: "
              f"{neutral(f.reason, TEXT_LIMIT)}"
              + (f" (muted: {neutral(f.muted, TEXT_LIMIT)})" if f.muted else "")
              for f in report.findings]
    lines += [f"  event {e.kind.value}: {neutral(e.reason, TEXT_LIMIT)}" for e in report.events]
    lines += [f"  {note}" for note in report.notes]
    if report.delivery is not None and report.delivery.paused_until:
        lines.append(f"  delivery paused until {report.delivery.paused_until:.0f}")
    return "\n".join(lines)


def _config_check(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    problem = state_dir_problem(config.bot.state_dir)
    if problem is not None:
        print(f"{path}: bot.state_dir: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if config.page.dir:
        from bot.pagefiles import page_dir_problem

        problem = page_dir_problem(config.page.dir)
        if problem is not None:
            print(f"{path}: page.dir: {problem}", file=sys.stderr)
            return EXIT_CONFIG
    for warning in config.warnings:
        print(f"{path}: warning: {warning}", file=sys.stderr)
    if not _fallbacks_ok(config, path):
        return EXIT_CONFIG
    namespace = f", namespace {config.redis.namespace!r}" if config.redis.namespace else ""
    print(f"{path}: OK (Redis {config.redis.url} from {config.redis.source}{namespace})")
    return EXIT_OK


def _fallbacks_ok(config: Config, source: str, out: TextIO | None = None) -> bool:
    """Check each [[fallback]] token with its server (no post); False when one is refused.

    A token taken is said on ``out`` (stdout by default), a refusal and a
    server that does not answer (a warning: it is checked again at run time)
    on stderr. The token itself is never printed.
    """
    if not config.fallbacks:
        return True
    from bot.app import check_fallbacks

    good = True
    for result in check_fallbacks(config):
        where = f"{source}: fallback[{result.index}]"
        text = _clean(result.text)[:2 * TEXT_LIMIT]
        if result.ok is True:
            print(f"{where}: {text}", file=out or sys.stdout)
        elif result.ok is None:
            print(f"{where}: warning: {text}", file=sys.stderr)
        else:
            print(f"{where}: {text}", file=sys.stderr)
            good = False
    return good


def _check(config: Config, *, as_json: bool) -> int:
    from bot.collect import Collector

    collector = Collector(config)
    try:
        snapshot = collector.collect()
    finally:
        collector.close()
    if as_json:
        json.dump(snapshot.to_dict(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        render(snapshot, sys.stdout)
    fallbacks_good = _fallbacks_ok(config, config.path or "defaults",
                                   sys.stderr if as_json else sys.stdout)
    if not snapshot.redis.reachable:
        print(f"statusbot: cannot read Redis at {snapshot.redis.url}: {snapshot.redis.error}",
              file=sys.stderr)
        return EXIT_UNREACHABLE
    return EXIT_OK if fallbacks_good else EXIT_CONFIG


def advise_command(config: Config, *, as_json: bool, wait: float,
                   clock: Callable[[], float] = time.time,
                   sleep: Callable[[float], None] = time.sleep,
                   out: TextIO | None = None) -> int:
    """``statusbot advise``: two readings ``wait`` seconds apart, job metrics, history → advice.

    Read-only: the snapshot's reads, one pipelined read of the job metrics, and
    the state file when it exists. Exit 1 when Redis cannot be read.
    """
    from bot import advising
    from bot.app import state_path
    from bot.collect import Collector, redis_client
    from bot.collect.database import read_database
    from bot.collect.jobmetrics import JobMetricsReader
    from bot.history import History
    from bot.store import Store, StoreError

    out = out or sys.stdout
    client = redis_client(config.redis)
    collector = Collector(config, client=client, clock=clock)
    try:
        first = collector.collect()
        if not first.redis.reachable:
            print(f"statusbot: cannot read Redis at {first.redis.url}: {first.redis.error}",
                  file=sys.stderr)
            return EXIT_UNREACHABLE
        snapshots = [first]
        if wait > 0:
            sleep(wait)
            second = collector.collect()
            if second.redis.reachable:
                snapshots.append(second)
        last = snapshots[-1]
        reader = JobMetricsReader(client, namespace=config.redis.namespace, clock=clock)
        metrics = reader.read(snapshots, advising.oldest_classes(last))
        path = state_path(config)
        store = None
        try:
            store = Store(path) if path.exists() else None
        except StoreError as exc:
            print(f"statusbot: cannot read {path} (no history used): {exc}", file=sys.stderr)
        database = None if config.postgres is None else read_database(config.postgres)
        try:
            history = None if store is None else History(store, interval=config.bot.interval)
            gathered = advising.gather(last, metrics, history, database)
        finally:
            if store is not None:
                store.close()
    finally:
        collector.close()
    result = advising.advise(gathered)
    if as_json:
        document = result.to_json()
        document["reading"] = {
            "snapshots": len(snapshots), "span_s": round(last.collected_at - first.collected_at,
                                                        1),
            "metrics": metrics.source, "growth_measured": gathered.growth_known,
            "history": gathered.history}
        json.dump(document, out, indent=2, sort_keys=True, allow_nan=False)
        out.write("\n")
        return EXIT_OK
    when = datetime.fromtimestamp(last.collected_at, tz=timezone.utc)
    out.write(f"statusbot advise, {when:%Y-%m-%d %H:%M:%S} UTC\n\n")
    for line in advising.advice_lines(gathered, result, config.wording):
        out.write(_clean(line) + "\n")
    return EXIT_OK


def size(n: float | None) -> str:
    """Format a byte count for people (binary units)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float | None) -> str:
    """Format seconds compactly: ``0s``, ``42s``, ``3m05s``, ``2h10m``, ``3d4h``."""
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def render(snapshot: Snapshot, out: TextIO) -> None:
    """Print a snapshot as a compact table for people.

    Every text read from Redis or the host goes through ``wording.neutral``: no
    escape sequence or control character reaches the terminal, and names are capped.
    """
    when = datetime.fromtimestamp(snapshot.collected_at, tz=timezone.utc)
    out.write(f"statusbot check, {when:%Y-%m-%d %H:%M:%S} UTC\n\n")
    r = snapshot.redis
    namespace = f" namespace {r.namespace!r}" if r.namespace else ""
    if r.reachable:
        limit = size(r.maxmemory_bytes) if r.maxmemory_bytes else "no limit"
        out.write(
            f"Redis    {r.url}{namespace}: version {neutral(r.version or '?')}, "
            f"round trip {r.rtt_ms:.2f} ms, memory {size(r.used_memory_bytes)} ({limit}, "
            f"{neutral(r.maxmemory_policy or '?')}), {r.connected_clients} clients\n"
        )
    else:
        out.write(f"Redis    {r.url}{namespace}: UNREACHABLE ({neutral(r.error, TEXT_LIMIT)})\n")
    if snapshot.sidekiq is not None:
        _render_sidekiq(snapshot.sidekiq, out)
    if snapshot.host is not None:
        _render_host(snapshot.host, out)
    else:
        out.write(f"\nHost     unreadable ({neutral(snapshot.host_error, TEXT_LIMIT)})\n")
    if snapshot.hosts or snapshot.host_anomalies:
        _render_hosts(snapshot, out)


def _render_hosts(snapshot: Snapshot, out: TextIO) -> None:
    """One line per other host: name, source, memory, swap and disks, or why it is not read."""
    out.write(f"\nOther hosts ({len(snapshot.hosts)})\n")
    names = [neutral(h.name) for h in snapshot.hosts]
    width = max([4, *(len(name) for name in names)])
    for name, h in zip(names, snapshot.hosts, strict=True):
        source = h.source.value + (f", {neutral(h.role)}" if h.role else "")
        age = f", {duration(h.age_s)} old" if h.age_s is not None else ""
        s = h.stats
        if s is None:
            out.write(f"{name:<{width}}  ({source}): NOT REPORTING "
                      f"({neutral(h.error or 'no reason given', TEXT_LIMIT)}{age})\n")
            continue
        disks = ", ".join(f"{neutral(d.path)} {d.percent:.0f}%" if d.percent is not None
                          else f"{neutral(d.path)} unreadable" for d in s.disks)
        out.write(f"{name:<{width}}  ({source}{age}): memory {size(s.memory_available_bytes)} "
                  f"available of {size(s.memory_total_bytes)} ({s.memory_percent:.0f}% used); "
                  f"swap {size(s.swap_used_bytes)} of {size(s.swap_total_bytes)}; "
                  f"disks {disks or 'none'}\n")
    if snapshot.host_anomalies:
        first = snapshot.host_anomalies[0]
        out.write(f"{len(snapshot.host_anomalies)} agent reading(s) or name(s) unusable; "
                  f"first: {neutral(first.key)}: {neutral(first.problem, TEXT_LIMIT)}\n")


def _render_sidekiq(s: SidekiqStats, out: TextIO) -> None:
    out.write(
        f"Sidekiq  processed {s.processed:,} (today {s.processed_today:,}), "
        f"failed {s.failed:,} (today {s.failed_today:,}); "
        f"scheduled {s.scheduled:,}, retries {s.retries:,}, dead {s.dead:,}\n\n"
    )
    names = [neutral(q.name) for q in s.queues]
    width = max([5, *(len(name) for name in names)])
    out.write(f"{'QUEUE':<{width}}  {'SIZE':>9}  {'LATENCY':>8}  STATE\n")
    for name, q in zip(names, s.queues, strict=True):
        state = "paused" if q.paused else ("served" if q.served else "NOT SERVED")
        out.write(f"{name:<{width}}  {q.size:>9,}  {duration(q.latency_s):>8}  {state}\n")
    if not s.queues:
        out.write("(no queues: Sidekiq has not stored a job in this Redis yet)\n")
    if not s.queues and not s.processes and not s.processed:
        out.write("No trace of Sidekiq in this Redis: is the URL, database number or "
                  "namespace right? ([redis] mastodon_env_file reads Mastodon's own)\n")
    out.write("\n")
    identities = [neutral(p.identity) for p in s.processes]
    width = max([7, *(len(identity) for identity in identities)])
    out.write(f"{'PROCESS':<{width}}  {'STATE':<5}  {'BUSY':>7}  {'RSS':>9}  QUEUES\n")
    for identity, p in zip(identities, s.processes, strict=True):
        state = "quiet" if p.alive and p.quiet else ("live" if p.alive else "STALE")
        busy = f"{p.busy if p.busy is not None else '?'}/{p.concurrency or '?'}"
        rss = size(p.rss_kb * 1024) if p.rss_kb is not None else "?"
        extra = f"  ({neutral(p.stale_reason, TEXT_LIMIT)})" if p.stale_reason else ""
        out.write(f"{identity:<{width}}  {state:<5}  {busy:>7}  {rss:>9}  "
                  f"{neutral(', '.join(p.queues), TEXT_LIMIT) or '?'}{extra}\n")
    if not s.processes:
        out.write("(no Sidekiq process registered)\n")
    utilisation = f" ({s.utilisation:.0%})" if s.utilisation is not None else ""
    out.write(f"\n{s.live_processes} live, {s.stale_processes} stale; "
              f"{s.busy} of {s.concurrency} threads busy{utilisation}\n")
    if s.anomaly_count:
        first = s.anomalies[0]
        out.write(f"{s.anomaly_count} pieces of Redis data had an unexpected shape; "
                  f"first: {neutral(first.key)}: {neutral(first.problem, TEXT_LIMIT)}\n")


def _render_host(h: HostStats, out: TextIO) -> None:
    used = h.memory_total_bytes - h.memory_available_bytes
    cpu = f"{h.cpu_percent:.0f}%" if h.cpu_percent is not None else "?"
    out.write(
        f"\nHost     {neutral(h.hostname)}: memory {size(used)} used of "
        f"{size(h.memory_total_bytes)} "
        f"({h.memory_percent:.0f}%), {size(h.memory_available_bytes)} available; "
        f"swap {size(h.swap_used_bytes)} of {size(h.swap_total_bytes)}; "
        f"load {h.load_1m:.2f} {h.load_5m:.2f} {h.load_15m:.2f} on {h.cpu_count or '?'} CPUs; "
        f"CPU {cpu}\n"
    )
    for d in h.disks:
        if d.error:
            out.write(f"Disk     {d.path}: unreadable ({neutral(d.error, TEXT_LIMIT)})\n")
        else:
            out.write(f"Disk     {d.path}: {size(d.used_bytes)} used of {size(d.total_bytes)} "
                      f"({d.percent:.0f}%), {size(d.free_bytes)} free\n")
    roles = ", ".join(f"{neutral(m.role)} {size(m.rss_bytes)} ({m.processes})" for m in h.roles
                      if m.processes)
    out.write(f"Memory by role (resident, processes): {roles}\n")
