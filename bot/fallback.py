"""Fallback accounts on other servers: the bot's voice while its own instance cannot be reached.

Each ``[[fallback]]`` entry is an account on another Mastodon server. While
the instance works, nothing is posted there. When the instance's website has
failed its health probe (``/health``), or posts to the instance have failed
(the instance outbox is paused by network errors or 5xx), for the entry's
``after``, the account posts a notice ("example.social cannot be reached since
14:05 UTC. We are working on it. Status: <page>"), follows up in that thread
while the outage lasts (sparingly: the open incident's changes are folded into
one post at most every ``FALLBACK_UPDATE_GAP``, a "still unreachable" after
``FALLBACK_REMINDER_EVERY`` without change, at most ``FALLBACK_MAX_FOLLOWUPS``),
and replies with the resolution once the instance answers again.

The decision is pure (``step``: state, signals and ``now`` in; new state, posts
and reasons out). The posts go through the same durable outbox as the
instance's, each with its destination (``fallback:<host>``): every fallback is
delivered by an ``Outbox`` of its own (own gate, backoff and threads), so a
fallback that fails never holds up the instance's queue, nor the other way
round. The thread state is committed with the tick's posts in one transaction
(``Fallbacks.plan`` runs before ``Store.commit_tick``), so a restart neither
loses nor repeats a fallback post; the keys (``<destination>:<outage start>:…``)
are the idempotency keys, one set per destination.

``Fallbacks`` is the edge the loop drives: ``plan`` before the commit,
``deliver`` after the instance's delivery. ``deliver`` also checks each
fallback token once per start (``verify_credentials``, no post); a refused token
(at that check or at delivery) is logged and told to the admins once, on the
instance, and the fallback's posts wait in the outbox meanwhile.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, TypeGuard

from bot import compose, defaults
from bot.gateway import Gateway, PermanentError, RetryableError
from bot.incidents import component_order
from bot.model import Incident, InstanceHealth, Post, PostKind, Severity
from bot.outbox import DeliveryReport, Outbox, gate_state
from bot.outbox import Reason as OutboxReason
from bot.store import OutboxItem, Store
from bot.wording import TEXT_LIMIT, fill, neutral

log = logging.getLogger(__name__)

FALLBACK_STATE = "fallback"
"""Named state of the fallback threads: ``{"web_down_since", "threads": {destination: …}}``."""

REFUSED_STATE = "fallback.refused"
"""Named state: fallbacks whose token was refused, ``{destination: {"since", "error"}}``
(the admins were told; cleared once the token works again)."""

UNREACHABLE_REASONS = (OutboxReason.RETRY.value,)
"""Reasons of an instance outbox pause that mean "cannot be reached" (network, timeout,
5xx); a 429, a refused token or a missing endpoint do not: the instance answered."""


class Reason(enum.Enum):
    """What ``step`` decided for one fallback (logged, and shown by ``--dry-run``)."""

    QUIET = "quiet"
    """The instance works and no thread is open: nothing to say there."""
    WAITING = "waiting"
    """The instance cannot be reached, for less than ``after`` so far."""
    NOTICE = "notice"
    """The instance has been unreachable for ``after``: the thread opens."""
    UPDATE = "update"
    """Still unreachable, and the open incident changed: a follow-up says so."""
    REMINDER = "reminder"
    """Still unreachable, nothing changed for a long time: a short follow-up."""
    HELD = "held"
    """Still unreachable; a follow-up is not due (spacing, or the cap reached)."""
    RESOLVED = "resolved"
    """The instance answers again: the resolution closes the thread."""


@dataclass(frozen=True, slots=True)
class Lane:
    """One fallback account as the core sees it: where its posts go, when, how visibly."""

    destination: str
    after: float = defaults.FALLBACK_AFTER
    visibility: str = defaults.FALLBACK_VISIBILITY


@dataclass(frozen=True, slots=True)
class Policy:
    """How sparingly a fallback thread is followed up (``bot/defaults.py``)."""

    update_gap: float = defaults.FALLBACK_UPDATE_GAP
    reminder_every: float = defaults.FALLBACK_REMINDER_EVERY
    max_followups: int = defaults.FALLBACK_MAX_FOLLOWUPS


@dataclass(frozen=True, slots=True)
class Thread:
    """An open fallback thread: the outage it tells of and what it said last.

    ``since`` is when the instance stopped answering (it names the thread's
    keys), ``notice_key`` the key of its first post, ``last_at`` when its last
    post was composed, ``followups`` how many came after the notice, ``news``
    the incident's impacts it told last.
    """

    since: float
    notice_key: str
    last_at: float
    followups: int = 0
    news: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FallbackState:
    """What ``step`` remembers between ticks (stored as ``FALLBACK_STATE``).

    ``web_down_since`` is when the instance's /health began failing (None:
    it answers, or is not probed); ``threads`` the open thread of each fallback
    destination.
    """

    web_down_since: float | None = None
    threads: Mapping[str, Thread] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the state as JSON-ready data."""
        return {"web_down_since": self.web_down_since,
                "threads": {name: {"since": t.since, "notice_key": t.notice_key,
                                   "last_at": t.last_at, "followups": t.followups,
                                   "news": list(t.news)}
                            for name, t in self.threads.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FallbackState:
        """Read what ``to_json`` wrote; ``ValueError`` names what is wrong with damaged data."""
        web = data.get("web_down_since")
        threads = data.get("threads", {})
        if web is not None and not _time(web):
            raise ValueError(f"web_down_since: not a time: {web!r:.40}")
        web_since = float(web) if web is not None else None
        if not isinstance(threads, dict):
            raise ValueError("threads: not an object")
        read: dict[str, Thread] = {}
        for name, raw in threads.items():
            if not isinstance(raw, dict):
                raise ValueError(f"threads.{name!s:.60}: not an object")
            since, last_at = raw.get("since"), raw.get("last_at")
            key, count, news = raw.get("notice_key"), raw.get("followups", 0), raw.get("news", [])
            if not (_time(since) and _time(last_at) and isinstance(key, str)
                    and isinstance(count, int) and not isinstance(count, bool) and count >= 0
                    and isinstance(news, list) and all(isinstance(n, str) for n in news)):
                raise ValueError(f"threads.{name!s:.60}: damaged ({raw!r:.80})")
            read[str(name)] = Thread(float(since), key, float(last_at), count, tuple(news))
        return cls(web_since, read)


def _time(value: object) -> TypeGuard[float]:
    """Tell whether ``value`` is an epoch time a thread may carry (finite, 1970 to 2200)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0.0 <= float(value) < 7.3e9)


@dataclass(frozen=True, slots=True)
class Signals:
    """What this tick tells of the instance.

    ``web_ok`` is the /health probe (None: not probed); ``posts_failing_since``
    when the instance outbox began failing to reach it (None: it does not
    fail, see ``posts_failing_since``); ``news`` the open incident's impacts
    in member words (``news_of``); ``planned`` when a maintenance window or
    silence that covers the website is active (no notice opens then).
    """

    web_ok: bool | None = None
    posts_failing_since: float | None = None
    news: tuple[str, ...] = ()
    planned: bool = False
    """A maintenance window or silence covering the website is active: downtime announced."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``step`` decided for one fallback destination, and why."""

    destination: str
    reason: Reason
    detail: str = ""


def posts_failing_since(gate: Mapping[str, Any] | None) -> float | None:
    """Return since when the instance outbox fails to reach the instance, from its gate state.

    Only a pause for a network error, a timeout or a 5xx counts (``UNREACHABLE_REASONS``):
    an instance that rate-limits or refuses the token answers. None: it does not fail.
    """
    if not gate:
        return None
    reason, since, failures = gate.get("reason"), gate.get("since"), gate.get("failures")
    if not isinstance(reason, str) or not reason.startswith(
            tuple(f"{r}:" for r in UNREACHABLE_REASONS)):
        return None
    if not isinstance(failures, int) or failures <= 0 or not _time(since):
        return None
    return float(since)


def news_of(incident: Incident | None, settings: compose.Settings) -> tuple[str, ...]:
    """Return the open incident's impacts in member words, worst first, for fallback posts.

    The website's own impact is left out (the fallback post says it cannot be
    reached), and so are estimates, which change every tick: what is told again
    only when it changes is what members would notice.
    """
    if incident is None:
        return ()
    words = settings.wording
    order = sorted(incident.affected, key=lambda a: (-a.severity, component_order(a.component)))
    sentences: list[str] = []
    for affected in order:
        if affected.component == "web" or affected.severity < Severity.WARNING:
            continue
        sentence = words.impact(affected.component).sentence
        if sentence not in sentences:
            sentences.append(sentence)
    return tuple(sentences)


def unreachable_since(state: FallbackState, signals: Signals, now: float,
                      ) -> tuple[float | None, float | None]:
    """Return (when /health began failing, when the instance became unreachable), or Nones."""
    if signals.web_ok is False:
        web = state.web_down_since if state.web_down_since is not None else now
    else:
        web = None
    starts = [t for t in (web, signals.posts_failing_since) if t is not None]
    return web, (min(starts) if starts else None)


def step(state: FallbackState, signals: Signals, lanes: Sequence[Lane], now: float,
         settings: compose.Settings, *, page_url: str = "", policy: Policy | None = None,
         ) -> tuple[FallbackState, list[Post], list[Decision]]:
    """Decide what each fallback account posts at ``now`` (pure).

    Returns the new state, the posts (each with its lane's destination) and
    one decision per lane. Nothing is posted while the instance works; the
    notice comes once the instance has been unreachable for the lane's
    ``after``; follow-ups are spaced and capped (``Policy``); the resolution
    comes on the first tick the instance answers again.
    """
    rules = policy or Policy()
    web, since = unreachable_since(state, signals, now)
    threads = dict(state.threads)
    posts: list[Post] = []
    decisions: list[Decision] = []
    for lane in lanes:
        thread = threads.get(lane.destination)
        if since is None:
            if thread is None:
                decisions.append(Decision(lane.destination, Reason.QUIET))
                continue
            posts.append(_resolution(lane, thread, now, settings, page_url))
            del threads[lane.destination]
            decisions.append(Decision(lane.destination, Reason.RESOLVED,
                                      f"unreachable from {since_text(thread.since)}"))
            continue
        if thread is None:
            if signals.planned:
                decisions.append(Decision(lane.destination, Reason.WAITING,
                                          "planned: a maintenance window or silence covers "
                                          "the website"))
                continue
            if now - since < lane.after:
                decisions.append(Decision(lane.destination, Reason.WAITING,
                                          f"unreachable for {now - since:.0f} s of "
                                          f"{lane.after:.0f} s"))
                continue
            thread = Thread(since=since, notice_key=f"{_prefix(lane, since)}:notice",
                            last_at=now, news=signals.news)
            posts.append(_notice(lane, thread, now, settings, page_url))
            threads[lane.destination] = thread
            decisions.append(Decision(lane.destination, Reason.NOTICE,
                                      f"unreachable since {since_text(since)}"))
            continue
        quiet_for = now - thread.last_at
        if thread.followups >= rules.max_followups or quiet_for < rules.update_gap:
            decisions.append(Decision(lane.destination, Reason.HELD,
                                      f"{thread.followups} follow-up(s), last "
                                      f"{quiet_for:.0f} s ago"))
            continue
        if signals.news != thread.news:
            reason = Reason.UPDATE
        elif quiet_for >= rules.reminder_every:
            reason = Reason.REMINDER
        else:
            decisions.append(Decision(lane.destination, Reason.HELD, "nothing new"))
            continue
        thread = replace(thread, last_at=now, followups=thread.followups + 1,
                         news=signals.news)
        posts.append(_followup(lane, thread, now, settings, page_url))
        threads[lane.destination] = thread
        decisions.append(Decision(lane.destination, reason, f"follow-up {thread.followups}"))
    # A thread of a fallback no longer configured is forgotten (it cannot be posted to).
    kept = {lane.destination for lane in lanes}
    threads = {name: t for name, t in threads.items() if name in kept}
    return FallbackState(web, threads), posts, decisions


def since_text(moment: float) -> str:
    """Return an epoch time for logs (UTC, to the minute)."""
    return f"{datetime.fromtimestamp(moment, tz=timezone.utc):%Y-%m-%d %H:%M} UTC"


# --- composing ------------------------------------------------------------------------------


def _prefix(lane: Lane, since: float) -> str:
    return f"{lane.destination}:{int(since)}"


def _settings(settings: compose.Settings) -> compose.Settings:
    """Return the composer's settings for another server: Mastodon's default limits."""
    return replace(settings, max_characters=defaults.INSTANCE_MAX_CHARACTERS,
                   characters_per_url=defaults.INSTANCE_CHARACTERS_PER_URL)


def _post(lane: Lane, key: str, kind: PostKind, lines: Sequence[str], optional: Sequence[str],
          now: float, settings: compose.Settings, page_url: str,
          parent_key: str | None = None) -> Post:
    """Fit ``lines`` (the first may be cut), ``optional`` lines if room, and the status link."""
    settings = _settings(settings)
    words = settings.wording

    def measure(text: str) -> int:
        return compose.mastodon_length(text, settings.characters_per_url)

    cw = compose.truncate(fill(words.cw_fallback, instance=settings.instance),
                          max(1, settings.max_characters // 3), measure) \
        if words.cw_fallback else ""
    link = fill(words.fallback_status, url=page_url) if page_url else ""
    budget = settings.max_characters - measure(cw)
    kept = [line for line in lines if line]
    tail = [link] if link else []
    text = "\n".join([*kept, *(line for line in optional if line), *tail])
    if measure(text) > budget:
        text = "\n".join([*kept, *tail])
    if measure(text) > budget:
        room = budget - (measure("\n" + link) if link else 0)
        text = "\n".join([compose.truncate("\n".join(kept), max(1, room), measure), *tail])
    return Post(key=key, kind=kind, text=text, visibility=lane.visibility, created_at=now,
                spoiler_text=cw, language=settings.language, parent_key=parent_key,
                destination=lane.destination)


def _news_line(news: Sequence[str], settings: compose.Settings) -> str:
    if not news:
        return ""
    return fill(settings.wording.fallback_news, sentences=" ".join(news))


def _notice(lane: Lane, thread: Thread, now: float, settings: compose.Settings,
            page_url: str) -> Post:
    words = settings.wording
    lead = fill(words.fallback_notice, instance=settings.instance,
                time=compose.local_time(thread.since, now, settings))
    return _post(lane, thread.notice_key, PostKind.NOTICE, [lead],
                 [_news_line(thread.news, settings)], now, settings, page_url)


def _followup(lane: Lane, thread: Thread, now: float, settings: compose.Settings,
              page_url: str) -> Post:
    words = settings.wording
    lead = fill(words.fallback_update, instance=settings.instance,
                time=compose.local_time(thread.since, now, settings),
                duration=compose.member_duration(now - thread.since, settings))
    return _post(lane, f"{_prefix(lane, thread.since)}:update:{thread.followups}",
                 PostKind.UPDATE, [lead], [_news_line(thread.news, settings)], now, settings,
                 page_url, parent_key=thread.notice_key)


def _resolution(lane: Lane, thread: Thread, now: float, settings: compose.Settings,
                page_url: str) -> Post:
    words = settings.wording
    lead = fill(words.fallback_resolution, instance=settings.instance,
                duration=compose.member_duration(now - thread.since, settings))
    return _post(lane, f"{_prefix(lane, thread.since)}:resolution", PostKind.RESOLUTION,
                 [lead], [], now, settings, "", parent_key=thread.notice_key)


def catchup_for(lane: Lane, settings: compose.Settings,
                ) -> Callable[[Sequence[Post], float, float], Post]:
    """Return the catch-up composer of a fallback outbox: the instance's, keyed and shown for it."""

    def catchup(posts: Sequence[Post], start: float, end: float) -> Post:
        post = compose.catchup(posts, start, end, _settings(settings))
        return replace(post, key=f"{lane.destination}:{post.key}", visibility=lane.visibility,
                       destination=lane.destination)

    return catchup


def refused_notice(destination: str, server: str, error: str, since: float, now: float,
                   settings: compose.Settings) -> Post | None:
    """Return the admin message about a refused fallback token (None: no admins).

    ``server`` comes from the configuration (host and port, shown as written);
    ``error`` from the server, so it is neutralised.

    Keyed by the fallback and when the refusal began, so it is queued once per
    episode whatever restarts happen.
    """
    text = fill(settings.wording.admin_fallback_refused, instance=settings.instance,
                server=server, error=neutral(error, TEXT_LIMIT))
    return compose.admin_message(f"{destination}:refused:{int(since)}", text, now, settings)


# --- the edge the loop drives -----------------------------------------------------------------


@dataclass
class Account:
    """One configured fallback: its lane, the outbox that delivers it, its server (host[:port])."""

    lane: Lane
    outbox: Outbox
    gateway: Gateway
    server: str
    verified: bool = False
    """The token was checked (or need not be: a dry run prints instead of posting)."""
    verify_due: float = 0.0


class Fallbacks:
    """The fallback accounts of a running bot: plans their posts, delivers them.

    ``plan`` runs in the tick before the commit (reads the store, no network);
    ``deliver`` after the instance's delivery (network, each fallback on its
    own, never raising).
    """

    def __init__(self, store: Store, accounts: Sequence[Account], settings: compose.Settings,
                 *, clock: Callable[[], float], page_url: str = "",
                 policy: Policy | None = None) -> None:
        self.store = store
        self.accounts = list(accounts)
        self.settings = settings
        self.clock = clock
        self.page_url = page_url
        self.policy = policy or Policy()
        self._last_error: dict[str, str] = {}

    @property
    def lanes(self) -> list[Lane]:
        """The lanes of the configured fallbacks, in configuration order."""
        return [account.lane for account in self.accounts]

    def state(self) -> FallbackState:
        """Return the stored state; a damaged one is kept aside and a fresh one used."""
        data = self.store.get_state(FALLBACK_STATE)
        if data is None:
            return FallbackState()
        try:
            return FallbackState.from_json(data)
        except (ValueError, TypeError) as exc:
            log.error("stored fallback state unreadable, kept as %s.broken: %s",
                      FALLBACK_STATE, exc)
            self.store.put_state(f"{FALLBACK_STATE}.broken", data)
            return FallbackState()

    def plan(self, now: float, instance: InstanceHealth | None, incident: Incident | None,
             *, planned: bool = False) -> tuple[list[Post], dict[str, Any], list[Decision]]:
        """Return this tick's fallback posts, the state to commit with them, and the decisions.

        ``planned``: a maintenance window or silence covering the website is active,
        so no notice opens (one that is open goes on; an outage that outlasts the
        window gets its notice once the window ends).
        """
        gate = self.store.get_state(gate_state())
        signals = Signals(web_ok=instance.web_ok if instance is not None else None,
                          posts_failing_since=posts_failing_since(gate),
                          news=news_of(incident, self.settings), planned=planned)
        new, posts, decisions = step(self.state(), signals, self.lanes, now, self.settings,
                                     page_url=self.page_url, policy=self.policy)
        for decision in decisions:
            if decision.reason not in (Reason.QUIET, Reason.HELD, Reason.WAITING):
                log.warning("fallback %s: %s (%s)", decision.destination,
                            decision.reason.value, decision.detail)
            else:
                log.debug("fallback %s: %s %s", decision.destination, decision.reason.value,
                          decision.detail)
        return posts, new.to_json(), decisions

    def deliver(self, budget: int = defaults.DELIVERY_BUDGET) -> list[DeliveryReport]:
        """Check tokens not yet checked, then deliver each fallback's queue; never raises."""
        reports: list[DeliveryReport] = []
        for account in self.accounts:
            try:
                self._verify(account)
                report = account.outbox.deliver(self.clock(), budget)
                self._after_delivery(account, report)
                reports.append(report)
                self._last_error.pop(account.lane.destination, None)
            except Exception as exc:  # a bug or a surprise: the others and the tick go on
                signature = f"{type(exc).__name__}: {exc}"
                if self._last_error.get(account.lane.destination) != signature:
                    log.error("fallback %s: delivery failed (logged once while it repeats): %s",
                              account.lane.destination, signature, exc_info=exc)
                    self._last_error[account.lane.destination] = signature
        return reports

    def _verify(self, account: Account) -> None:
        """Read the fallback account once per start (no post): learn if it takes the token."""
        now = self.clock()
        if account.verified or now < account.verify_due:
            return
        try:
            account.gateway.probe()
        except RetryableError as exc:
            account.verify_due = now + defaults.FALLBACK_VERIFY_RETRY
            log.warning("fallback %s: token not checked yet, the server did not answer: %s",
                        account.lane.destination, exc)
            return
        except PermanentError as exc:
            account.verified = True
            if exc.status == 401:
                self._refused(account, str(exc))
            else:
                log.warning("fallback %s: the account cannot be read (%s); posting may still "
                            "work", account.lane.destination, exc)
            return
        account.verified = True
        self._accepted(account)
        log.info("fallback %s: token accepted", account.lane.destination)

    def _after_delivery(self, account: Account, report: DeliveryReport) -> None:
        """Tell a token refused at delivery; forget a refusal once the server takes posts."""
        refused = [d for d in report.decisions if d.reason is OutboxReason.CREDENTIALS_REJECTED]
        if refused:
            self._refused(account, refused[-1].detail)
        elif report.sent:
            self._accepted(account)

    def _refused(self, account: Account, error: str) -> None:
        """Log and tell the admins once per refusal (the state survives restarts)."""
        name = account.lane.destination
        told = dict(self.store.get_state(REFUSED_STATE) or {})
        if name in told:
            return
        now = self.clock()
        log.error("fallback %s: %s refused the token (%s); its posts wait until it is fixed",
                  name, account.server, error)
        notice = refused_notice(name, account.server, error, now, now, self.settings)
        told[name] = {"since": now, "error": error[:TEXT_LIMIT]}
        self.store.commit_tick([notice] if notice is not None else [], {REFUSED_STATE: told})

    def _accepted(self, account: Account) -> None:
        told = self.store.get_state(REFUSED_STATE) or {}
        if account.lane.destination in told:
            rest = {k: v for k, v in told.items() if k != account.lane.destination}
            self.store.put_state(REFUSED_STATE, rest)
            log.warning("fallback %s: the token works again", account.lane.destination)

    def flush(self) -> None:
        """Deliver once more at shutdown; never raises."""
        self.deliver()

    def pending(self) -> dict[str, int]:
        """Return how many posts wait for each fallback (for reports and tests)."""
        return {a.lane.destination: self.store.counts(a.lane.destination)["pending"]
                for a in self.accounts}


def failure_notice_for(settings: compose.Settings, clock: Callable[[], float],
                       ) -> Callable[[OutboxItem], Post | None]:
    """Return the admin message composer for a fallback post the server refused for good."""

    def notice(item: OutboxItem) -> Post | None:
        return compose.failure_notice(item.post, item.error or "refused", clock(), settings)

    return notice
