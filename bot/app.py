"""Wire a ``Config`` into a running ``Bot``: gateway, store, outbox, collectors, rules."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from bot import compose, defaults, incidents, report, reporting
from bot.adopt import Adopter
from bot.collect import Collector
from bot.collect.instance import InstanceProber
from bot.commands import Admin
from bot.config import Config
from bot.console import ConsoleGateway
from bot.gateway import Gateway, InstanceLimits, PermanentError, RetryableError
from bot.handlers import CommandHandler
from bot.history import History
from bot.loop import Bot
from bot.mastodon_api import MastodonGateway
from bot.mentions import Intake, ReplyLimiter
from bot.model import Post
from bot.outbox import Outbox
from bot.store import ADOPT_STATE, OutboxItem, Store

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
          gateway: Gateway | None = None, clock: Callable[[], float] = time.time) -> Bot:
    """Return a ready ``Bot``. ``dry_run`` prints posts and keeps state in memory only."""
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
    if not dry_run and mastodon.api_base_url and store.get_state(ADOPT_STATE) is not None:
        bot.adopter = Adopter(store, gateway, settings)  # a new state file
    if not dry_run:
        bot.history = History(store, interval=config.bot.interval)
        bot.reports = config.reports
        bot.reports_dir = Path(config.bot.state_dir) / "reports"
        bot.daily_counters = bot.collector.sidekiq.daily_counters
    if config.commands.enabled and isinstance(gateway, MastodonGateway):
        bot.setup_commands = functools.partial(start_commands, config, gateway, bot, clock)
    return bot


def latest_report(bot: Bot, now: float) -> str:
    """Return the figures of the last seven days, as the admin command ``report`` gives them."""
    if bot.history is None or bot.daily_counters is None:
        return "No history is kept here, so there is no report to give."
    due = reporting.Due("weekly", now - reporting.WEEK, now, "report:latest")
    figures = reporting.weekly_figures(bot.history, bot.daily_counters, due, now,
                                       bot.incident_state().open)
    return report.digest_text(figures, bot.settings)


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
        latest_report=functools.partial(latest_report, bot), clock=clock)
    limiter = ReplyLimiter(per_account=commands_config.replies_per_account,
                           total=commands_config.replies_per_hour)
    intake = Intake(bot.store, gateway, handler, clock=clock, stream=commands_config.stream,
                    backfill_every=commands_config.backfill_every, limiter=limiter,
                    exempt=handler.is_admin, audit_drop=handler.dropped)
    intake.start(ensure_policy=commands_config.ensure_policy)
    log.info("answering mentions as @%s; admins: %s", bot_acct,
             ", ".join(a.acct for a in admins) or "none")
    return intake
