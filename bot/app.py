"""Wire a ``Config`` into a running ``Bot``: gateway, store, outbox, collectors, rules."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from bot import advising, compose, defaults, health, incidents, report, reporting
from bot.adopt import Adopter
from bot.collect import Collector
from bot.collect.database import DatabaseReader
from bot.collect.instance import InstanceProber
from bot.collect.jobmetrics import JobMetricsReader
from bot.commands import Admin
from bot.config import Config
from bot.console import ConsoleGateway
from bot.fallback import Account, Fallbacks, Lane, catchup_for, failure_notice_for
from bot.gateway import Gateway, InstanceLimits, PermanentError, RetryableError
from bot.handlers import CommandHandler
from bot.history import History
from bot.lease import Election, RedisLease, new_id
from bot.loop import Bot
from bot.mastodon_api import MastodonGateway
from bot.mentions import Intake, ReplyLimiter
from bot.model import Post
from bot.outbox import Outbox
from bot.store import ADOPT_STATE, OutboxItem, Store

if TYPE_CHECKING:
    from bot.pagetick import PageTick

log = logging.getLogger(__name__)


def make_gateway(config: Config, *, dry_run: bool, out: TextIO) -> Gateway:
    """Return the Mastodon gateway, or the console one with no instance or with ``dry_run``.

    A dry run against a configured instance still reads the instance's limits
    (one GET), so the printed posts are cut exactly as they would be.
    """
    mastodon = config.mastodon
    if not mastodon.api_base_url:
        return ConsoleGateway(out)
    if mastodon.access_token is None:  # load_config insists on one; a hand-made Config may not
        raise ValueError("[mastodon] api_base_url is set but there is no access token")
    real = MastodonGateway(mastodon.api_base_url, mastodon.access_token.reveal(),
                           request_timeout=mastodon.request_timeout)
    return ConsoleGateway(out, limits=instance_limits(real)) if dry_run else real


def instance_limits(gateway: Gateway) -> InstanceLimits:
    """Return the instance's limits; the defaults (and a warning) when it cannot be asked."""
    try:
        return gateway.limits()
    except (RetryableError, PermanentError) as exc:
        log.warning("could not read the instance's limits, assuming the defaults: %s", exc)
        return InstanceLimits()


def host_rules(config: Config) -> Mapping[str, health.Rules]:
    """Return each ``[[hosts]]`` entry's own rules by host name (hosts without any left out)."""
    return {entry.name: entry.health for entry in config.hosts if entry.health is not None}


def settings_for(config: Config, limits: InstanceLimits) -> compose.Settings:
    """Return the composer's settings from the config and the instance's limits."""
    mastodon = config.mastodon
    host = urlsplit(mastodon.api_base_url).hostname if mastodon.api_base_url else None
    return compose.Settings(
        instance=host or defaults.INSTANCE_NAME,
        max_characters=limits.max_characters,
        language=mastodon.language,
        member_visibility=mastodon.member_visibility,
        admin_accts=mastodon.admins,
        timezone=mastodon.timezone,
        status_visibility=mastodon.status_visibility,
        characters_per_url=limits.characters_reserved_per_url,
        wording=config.wording,
    )


def state_path(config: Config) -> Path:
    """Return the SQLite state file's path."""
    return Path(config.bot.state_dir) / defaults.STATE_FILE


def heartbeat_path(config: Config) -> Path:
    """Return the file the loop touches after every completed tick."""
    return Path(config.bot.state_dir) / defaults.HEARTBEAT_FILE


def build(config: Config, *, dry_run: bool = False, out: TextIO,
          gateway: Gateway | None = None, clock: Callable[[], float] = time.time,
          fallback_gateways: Mapping[str, Gateway] | None = None) -> Bot:
    """Return a ready ``Bot``. ``dry_run`` prints posts and keeps state in memory only.

    ``fallback_gateways`` replaces the gateway of a ``[[fallback]]`` by its
    destination (tests).
    """
    gateway = gateway or make_gateway(config, dry_run=dry_run, out=out)
    settings = settings_for(config, instance_limits(gateway))
    store = Store(":memory:" if dry_run else state_path(config), clock=clock)

    def failure_notice(item: OutboxItem) -> Post | None:
        return compose.failure_notice(item.post, item.error or "refused", clock(), settings)

    outbox = Outbox(store, gateway, clock=clock, backoff_base=config.mastodon.retry_after,
                    backoff_cap=config.mastodon.retry_max,
                    catchup=functools.partial(compose.catchup, settings=settings),
                    failure_notice=failure_notice,
                    destination=(config.mastodon.api_base_url or None
                                 if isinstance(gateway, MastodonGateway) else None))
    mastodon = config.mastodon
    prober = (InstanceProber(mastodon.api_base_url, mastodon.streaming_url or None)
              if mastodon.api_base_url and mastodon.probe_health else None)
    bot = Bot(
        collector=Collector(config, clock=clock),
        store=store,
        outbox=outbox,
        gateway=gateway,
        settings=settings,
        rules=config.health,
        host_rules=host_rules(config),
        policy=incidents.Policy(reminder_every_s=config.posts.reminder_every,
                                max_reminders=config.posts.max_reminders),
        mutes=config.mutes,
        prober=prober,
        status_every=config.posts.status_every,
        profile_field=config.posts.profile_field,
        heartbeat=None if dry_run else heartbeat_path(config),
        confirm_delay=(config.commands.confirm_delay
                       if config.commands.incident_mode == "confirm" else None),
        clock=clock,
    )
    bot.metrics_reader = _metrics_reader(config, bot, clock)
    if config.postgres is not None:
        bot.database_reader = DatabaseReader(config.postgres)
    if not dry_run and mastodon.api_base_url and store.get_state(ADOPT_STATE) is not None:
        bot.adopter = Adopter(store, gateway, settings)  # a new state file
    if not dry_run:
        bot.history = History(store, interval=config.bot.interval)
        bot.reports = config.reports
        bot.reports_dir = Path(config.bot.state_dir) / "reports"
        bot.daily_counters = bot.collector.sidekiq.daily_counters
    if config.commands.enabled and isinstance(gateway, MastodonGateway):
        bot.setup_commands = functools.partial(start_commands, config, gateway, bot, clock)
    if config.bot.standby and not dry_run:
        bot.election = make_election(config)
        bot.adopt_on_takeover = bool(mastodon.api_base_url)
    if config.fallbacks:
        bot.fallbacks = make_fallbacks(config, store, settings, dry_run=dry_run, out=out,
                                       clock=clock, gateways=fallback_gateways)
    if not dry_run and config.page.dir:
        bot.page_setup = functools.partial(start_page, config, bot)
    return bot


def make_election(config: Config) -> Election:
    """Return the standby election on ``[redis]``'s server, logged in as ``[agent]``'s user."""
    lease = RedisLease.connect(config.redis, config.agent, new_id())
    return Election(lease, config.bot.interval)


@dataclass(frozen=True, slots=True)
class FallbackCheck:
    """The outcome of checking one ``[[fallback]]`` token (``check``, ``config-check``).

    ``ok`` is True when the server took the token, False when it refused it
    (or has no Mastodon API there), None when it could not be asked.
    ``text`` says so in one line, never with the token.
    """

    index: int
    destination: str
    ok: bool | None
    text: str


def check_fallbacks(config: Config, gateways: Mapping[str, Gateway] | None = None,
                    ) -> list[FallbackCheck]:
    """Read each fallback account once (``verify_credentials``), posting nothing."""
    found: list[FallbackCheck] = []
    timeout = min(config.mastodon.request_timeout, defaults.FALLBACK_CHECK_TIMEOUT)
    for index, entry in enumerate(config.fallbacks):
        server = entry.destination.removeprefix("fallback:")
        gateway = (gateways or {}).get(entry.destination)
        if gateway is None:
            if entry.access_token is None:
                found.append(FallbackCheck(index, entry.destination, None,
                                           f"{server}: no token read, not checked"))
                continue
            gateway = MastodonGateway(entry.api_base_url, entry.access_token.reveal(),
                                      request_timeout=timeout)
        try:
            gateway.probe()
        except PermanentError as exc:
            if exc.status == 403:
                found.append(FallbackCheck(index, entry.destination, None,
                    f"{server} took the token but lets it not read the account ({exc}); "
                    f"posting may still work (the token needs write:statuses)"))
                continue
            what = ("refused the token" if exc.status == 401
                    else "has no Mastodon API at this address" if exc.status == 404
                    else "refused the check")
            found.append(FallbackCheck(index, entry.destination, False,
                                       f"{server} {what} ({exc})"))
            continue
        except RetryableError as exc:
            found.append(FallbackCheck(index, entry.destination, None,
                                       f"{server} did not answer, token not checked ({exc})"))
            continue
        found.append(FallbackCheck(index, entry.destination, True,
                                   f"{server} took the token"))
    return found


def make_fallbacks(config: Config, store: Store, settings: compose.Settings, *, dry_run: bool,
                   out: TextIO, clock: Callable[[], float],
                   gateways: Mapping[str, Gateway] | None = None) -> Fallbacks:
    """Return the ``[[fallback]]`` accounts, each with a gateway and an outbox of its own.

    A dry run prints their posts (nothing is sent to the fallback servers).
    Each outbox delivers only its destination's rows, with the instance's
    backoff settings and a gate of its own.
    """
    accounts: list[Account] = []
    for entry in config.fallbacks:
        lane = Lane(entry.destination, entry.after, entry.visibility)
        gateway = (gateways or {}).get(lane.destination)
        if gateway is None and dry_run:
            gateway = ConsoleGateway(out)
        elif gateway is None:
            if entry.access_token is None:  # load_config insists on one
                raise ValueError(f"[[fallback]] {lane.destination} has no access token")
            gateway = MastodonGateway(entry.api_base_url, entry.access_token.reveal(),
                                      request_timeout=config.mastodon.request_timeout)
        outbox = Outbox(store, gateway, clock=clock, backoff_base=config.mastodon.retry_after,
                        backoff_cap=config.mastodon.retry_max,
                        catchup=catchup_for(lane, settings),
                        failure_notice=failure_notice_for(settings, clock),
                        destination=(entry.api_base_url
                                     if isinstance(gateway, MastodonGateway) else None),
                        route=lane.destination)
        server = lane.destination.removeprefix("fallback:")
        accounts.append(Account(lane, outbox, gateway, server=server,
                                verified=isinstance(gateway, ConsoleGateway)))
    return Fallbacks(store, accounts, settings, clock=clock, page_url=config.page.url)


def start_page(config: Config, bot: Bot, now: float) -> PageTick:
    """Return the status page's tick part (the loop calls this on its first tick).

    Imported here, not at the top, so that a bot without ``[page] dir`` never
    loads the renderer. A dry run writes no page (``statusbot page`` does).
    """
    from bot import pagetick

    history = bot.history if bot.history is not None else History(
        bot.store, interval=config.bot.interval)
    return pagetick.start(config, bot.store, history, bot.settings, now)


def latest_report(bot: Bot, now: float) -> str:
    """Return the figures of the last seven days, as the admin command ``report`` gives them."""
    if bot.history is None or bot.daily_counters is None:
        return "No history is kept here, so there is no report to give."
    due = reporting.Due("weekly", now - reporting.WEEK, now, "report:latest")
    figures = reporting.weekly_figures(bot.history, bot.daily_counters, due, now,
                                       bot.incident_state().open)
    return report.digest_text(figures, bot.settings)


def _metrics_reader(config: Config, bot: Bot,
                    clock: Callable[[], float]) -> JobMetricsReader | None:
    client = getattr(bot.collector, "client", None)
    if client is None:
        return None
    return JobMetricsReader(client, namespace=config.redis.namespace, clock=clock)


def advice_text(bot: Bot, reader: JobMetricsReader | None, now: float) -> str:
    """Return the capacity advice for the admin command ``advise`` (admins only, never members).

    From the latest snapshot, the snapshots kept for growth, the job metrics (one
    Redis read at most a minute), the database's connections (one reading at
    most a minute) and the history; ``now`` is unused (the snapshot's time counts).
    """
    del now
    snapshot = bot.last_snapshot
    words = bot.settings.wording
    if snapshot is None or snapshot.sidekiq is None:
        return words.admin_advice_no_reading
    snapshots = list(bot.recent_snapshots)
    if not snapshots or snapshots[-1] is not snapshot:
        snapshots.append(snapshot)
    metrics = None if reader is None else reader.read(snapshots,
                                                      advising.oldest_classes(snapshot))
    database = None if bot.database_reader is None else bot.database_reader.read()
    gathered = advising.gather(snapshot, metrics, bot.history, database)
    return "\n".join(advising.advice_lines(gathered, advising.advise(gathered), words))


def start_commands(config: Config, gateway: MastodonGateway, bot: Bot,
                   clock: Callable[[], float]) -> Intake | None:
    """Resolve the bot's and the admins' accounts and start the mention intake.

    Returns None (and logs why) when the instance cannot be asked yet; the
    loop tries again later. An admin the instance does not know is left out,
    loudly: nobody else ever gets their rights.
    """
    try:
        bot_id, bot_acct = gateway.own_account()
        admins: list[Admin] = []
        for acct in config.mastodon.admins:
            try:
                account_id, real_acct, is_bot = gateway.resolve_account(acct)
            except PermanentError as exc:
                log.error("admin %s not found on the instance, left out: %s", acct, exc)
                continue
            if is_bot:
                log.error("admin %s is a bot account, left out", acct)
                continue
            admins.append(Admin(acct=real_acct, account_id=account_id))
    except RetryableError as exc:
        log.warning("commands not started yet (the instance did not answer): %s", exc)
        return None
    commands_config = config.commands
    handler = CommandHandler(
        bot.store, bot.settings, bot_acct=bot_acct, bot_account_id=bot_id, admins=admins,
        snapshot=lambda: bot.last_snapshot, public_commands=commands_config.public,
        admin_visibilities=commands_config.admin_visibilities,
        confirm_enabled=commands_config.incident_mode == "confirm",
        local_domain=urlsplit(config.mastodon.api_base_url).hostname,
        latest_report=functools.partial(latest_report, bot),
        advice=functools.partial(advice_text, bot, bot.metrics_reader),
        clock=clock)
    limiter = ReplyLimiter(per_account=commands_config.replies_per_account,
                           total=commands_config.replies_per_hour)
    intake = Intake(bot.store, gateway, handler, clock=clock, stream=commands_config.stream,
                    backfill_every=commands_config.backfill_every, limiter=limiter,
                    exempt=handler.is_admin, audit_drop=handler.dropped)
    intake.start(ensure_policy=commands_config.ensure_policy)
    log.info("answering mentions as @%s; admins: %s", bot_acct,
             ", ".join(a.acct for a in admins) or "none")
    return intake
