"""Mention intake: the user stream plus a polling backfill, each mention handled exactly once.

Mentions arrive two ways. The user stream (``Gateway.stream_mentions``) brings
them within milliseconds but loses whatever is sent while it is down, so a
polling backfill (``Gateway.mentions_since``) pages through the mention
notifications after a persisted ``min_id`` cursor: at start-up, each time the
stream (re)connects, after the stream died, and every ``backfill_every``
seconds. The two overlap on purpose; the ``notifications`` table decides.

Exactly once:

* A mention is *claimed* by inserting its notification id into the
  ``notifications`` table (``Store.claim_and_enqueue``), in the same SQLite
  transaction as the reply posts (queued in the outbox), the audit entries and
  any state the command changed. A crash before that commit leaves the mention
  unclaimed (it is handled again, from the backfill); after it, the reply is in
  the outbox and delivered exactly once by the outbox's idempotency keys.
* The handler is called only for a mention that is not claimed yet, on the
  loop thread only (the stream's thread just queues).
* The cursor is moved only by the backfill, and only over mentions it has
  claimed, in id order (ids compare as integers). A mention that came over the
  stream does not move it: a higher id seen on the stream says nothing about
  lower ids that were sent while the stream was down.

Safety: a fresh state (no cursor, as after a lost state file) takes its cursor
from the newest mention before the stream opens, so nothing the account was
mentioned in before this start is acted on, however recent (a lost state must
not post an admin's ``incident`` again). Mentions older than ``max_age``
(after an outage) are claimed as "stale" and not acted on; accounts flagged as
bots are not answered (two bots would answer each other for ever); replies are
limited per account and overall (``ReplyLimiter``), except that an ``exempt``
sender's (an admin's) command always runs: only its reply is noted as over the
limit. Every mention dropped unrun (stale, bot, rate limited, failed) is audited
(``audit_drop``). The backfill never makes more than ``MENTIONS_PAGINATED_BUDGET``
paginated requests per 15 minutes, and a 429 or a failure pauses it with
backoff. A handler that raises is logged with its traceback, the mention is
claimed as "error" and answered with a generic reply (never retried in a loop).

Audit under a flood: an entry about another sender's mention (not an admin's,
by ``exempt``: a command refused, a mention dropped unrun) is collapsed into one
row per account, command and result and hour (``AUDIT_COLLAPSE_WINDOW``) with
a count and the last mention's time, and at most ``AUDIT_MAX_OTHERS`` such rows
are kept; an admin's entries stay one row each, for ``AUDIT_RETENTION``, within
``AUDIT_MAX_ROWS`` rows in all (``Store.prune_audit``, after every drain that
audited another sender, else hourly). Why: an admin reading ``statusbot audit
-n 20`` after a flood needs the admins' own actions and who flooded, when and
how much, not 50,000 lines alike (nor a file that grows with them); the
first mention's text stays on the row as an example. A flood from many
accounts is cut to the newest rows, which still say it happened; it can never
push out the admins' newest ``AUDIT_MAX_ROWS - AUDIT_MAX_OTHERS`` rows.

Scopes: ``read:notifications`` and ``read:statuses`` (the notifications, the
user stream and reading the policy), ``write:notifications`` (accepting
private mentions, see ``ensure_notification_policy``), ``read:accounts``
(resolving the admins' accts to ids), and ``write:statuses`` for the replies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import math
import queue
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bot import defaults
from bot.gateway import Gateway, Mention, PermanentError, RetryableError, StreamHandle, id_order
from bot.model import Post, PostKind
from bot.outbox import EXTERNAL_PARENT, backoff_delay
from bot.store import AuditEntry, HandledNotification, Store

log = logging.getLogger(__name__)


# --- rate limiting (pure) ---------------------------------------------------------


@dataclass
class TokenBucket:
    """``capacity`` tokens that refill evenly over ``window`` seconds; pure (``now`` is given).

    Starts full. Time going backwards refills nothing.
    """

    capacity: float
    window: float
    tokens: float = math.nan
    at: float = -math.inf

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.window <= 0:
            raise ValueError("a token bucket needs a positive capacity and window")
        if math.isnan(self.tokens):
            self.tokens = float(self.capacity)

    def level(self, now: float) -> float:
        """Return the tokens available at ``now``."""
        if now <= self.at:
            return self.tokens
        return min(float(self.capacity),
                   self.tokens + (now - self.at) * self.capacity / self.window)

    def take(self, now: float, count: float = 1.0) -> None:
        """Spend ``count`` tokens at ``now`` (the level may go below zero: a debt)."""
        self.tokens = self.level(now) - count
        self.at = max(self.at, now)

    def full(self, now: float) -> bool:
        """Return True when the bucket is full at ``now`` (as if never used)."""
        return self.level(now) >= self.capacity

    def ready_at(self, now: float, count: float = 1.0) -> float:
        """Return when ``count`` tokens will be available (``now`` if they are)."""
        missing = count - self.level(now)
        if missing <= 0:
            return now
        return max(now, self.at) + missing * self.window / self.capacity


class Limit(enum.Enum):
    """Whether an account may get a reply now, and if not, why."""

    ALLOWED = "allowed"
    ACCOUNT = "account over its reply limit"
    GLOBAL = "over the global reply limit"


class ReplyLimiter:
    """Per-account and global reply limits (token buckets); pure: ``now`` is an argument.

    An account gets at most ``per_account`` replies per ``account_window``
    seconds, everyone together ``total`` per ``total_window``. ``check`` does
    not spend anything; ``record`` spends once replies were queued. State is
    bounded: an account whose bucket is full again is the same as one never
    seen, so those are forgotten first when more than ``max_accounts`` are
    tracked, then the least recently used.
    """

    def __init__(self, per_account: int = defaults.REPLIES_PER_ACCOUNT,
                 account_window: float = defaults.REPLIES_ACCOUNT_WINDOW,
                 total: int = defaults.REPLIES_GLOBAL,
                 total_window: float = defaults.REPLIES_GLOBAL_WINDOW,
                 max_accounts: int = defaults.REPLY_LIMITER_ACCOUNTS) -> None:
        if per_account < 1 or total < 1 or max_accounts < 1:
            raise ValueError("reply limits must allow at least one reply and one account")
        self.per_account = per_account
        self.account_window = account_window
        self.max_accounts = max_accounts
        self.overall = TokenBucket(total, total_window)
        self._accounts: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._accounts)

    def check(self, account_id: str, now: float) -> Limit:
        """Return whether ``account_id`` may get a reply at ``now`` (spends nothing)."""
        bucket = self._accounts.get(account_id)
        if bucket is not None and bucket.level(now) < 1.0:
            return Limit.ACCOUNT
        if self.overall.level(now) < 1.0:
            return Limit.GLOBAL
        return Limit.ALLOWED

    def record(self, account_id: str, now: float, replies: int = 1) -> None:
        """Spend ``replies`` from ``account_id``'s bucket and the global one."""
        if replies <= 0:
            return
        bucket = self._accounts.get(account_id)
        if bucket is None:
            bucket = TokenBucket(self.per_account, self.account_window)
            self._accounts[account_id] = bucket
        bucket.take(now, replies)
        self._accounts.move_to_end(account_id)
        self.overall.take(now, replies)
        if len(self._accounts) > self.max_accounts:
            self._evict(now)

    def _evict(self, now: float) -> None:
        for account_id in [a for a, b in self._accounts.items() if b.full(now)]:
            del self._accounts[account_id]
        while len(self._accounts) > self.max_accounts:
            self._accounts.popitem(last=False)

    def restore(self, history: Iterable[HandledNotification]) -> None:
        """Replay recent replies (``Store.replied_since``), so a restart forgets no limit."""
        for item in sorted(history, key=lambda h: h.handled_at):
            self.record(item.account_id, item.handled_at, item.replies)


# --- what the handler returns, what the intake reports -------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling one mention produced, committed with its claim in one transaction.

    ``posts`` are the replies (queued in the outbox), ``detail`` is a short
    note stored with the result ("status", "unknown command"), ``audit`` the
    admin actions to record, ``states`` named store state the command changed.
    """

    posts: Sequence[Post] = ()
    detail: str = ""
    audit: Sequence[AuditEntry] = ()
    states: Mapping[str, dict[str, Any]] = field(default_factory=dict)


Handler = Callable[[Mention], "Outcome | Sequence[Post]"]
"""Turns a new mention into replies: an ``Outcome``, or just the reply posts."""

ErrorReply = Callable[[Mention, float], Sequence[Post]]
"""Composes the generic reply to a mention whose handler raised (mention, now)."""

Exempt = Callable[[Mention], bool]
"""Says whether a mention's sender is exempt from the reply limits (the admins)."""

DropAudit = Callable[[Mention, str, float], Sequence[AuditEntry]]
"""Describes a mention the intake drops (mention, why, now) as audit entries."""

BASELINE_STATE = "mentions.baseline"
"""Named state written when a fresh state took its cursor from the newest mention."""


class Source(enum.Enum):
    """Where a mention came from."""

    STREAM = "stream"
    BACKFILL = "backfill"


class Result(enum.Enum):
    """What the intake did with a new mention (stored, with a detail, as its result)."""

    ANSWERED = "answered"
    NO_REPLY = "no reply"
    ERROR = "error"
    RATE_LIMITED = "rate limited"
    STALE = "stale"
    IGNORED_BOT = "ignored bot"


class StreamState(enum.Enum):
    """The user stream as the intake last saw it."""

    OFF = "off"
    CONNECTING = "connecting"
    RECEIVING = "receiving"
    DOWN = "down"


class Backfill(enum.Enum):
    """Why a drain did or did not poll for mentions."""

    RAN = "ran"
    NOT_DUE = "not_due"
    PAUSED = "paused"
    OUT_OF_BUDGET = "out_of_budget"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Handled:
    """One mention the intake claimed in a drain, and what became of it."""

    notification_id: str
    acct: str
    source: Source
    result: Result
    detail: str = ""
    replies: int = 0


@dataclass(frozen=True, slots=True)
class IntakeReport:
    """The outcome of one ``Intake.drain``.

    ``handled`` lists the mentions claimed in this drain (``replies`` > 0: the
    outbox has something to deliver); ``duplicates`` counts mentions seen again
    (stream and backfill overlapping, or a restart).
    """

    handled: tuple[Handled, ...] = ()
    duplicates: int = 0
    backfill: Backfill = Backfill.NOT_DUE
    pages: int = 0
    stream: StreamState = StreamState.OFF
    cursor: str | None = None

    @property
    def replies(self) -> int:
        """Replies queued in this drain."""
        return sum(h.replies for h in self.handled)


def _over_limit(outcome: Outcome, limit: Limit) -> Outcome:
    """Return an exempt sender's outcome, its detail and audit noting the reply over ``limit``."""
    note = f"reply over the limit: {limit.name.lower()}"
    audit = tuple(dataclasses.replace(e, result=f"{e.result} ({note})"[:500])
                  for e in outcome.audit)
    detail = f"{outcome.detail} ({note})" if outcome.detail else note
    return dataclasses.replace(outcome, detail=detail, audit=audit)


# --- replies ---------------------------------------------------------------------------


def reply_key(mention: Mention) -> str:
    """Return the idempotency key of the (first) reply to ``mention``."""
    return f"reply:{mention.notification_id}"


def reply_parent(mention: Mention) -> str:
    """Return the outbox ``parent_key`` that makes a post a reply to ``mention``'s status."""
    return f"{EXTERNAL_PARENT}{mention.status_id}"


def reply_visibility(visibility: str) -> str:
    """Return the visibility of a reply: the mention's, but never public (unlisted instead)."""
    return visibility if visibility in ("direct", "private", "unlisted") else "unlisted"


def generic_error_reply(mention: Mention, now: float, language: str = "en") -> list[Post]:
    """Return the reply to a mention whose handler failed: an apology, nothing technical."""
    return [Post(key=reply_key(mention), kind=PostKind.REPLY,
                 text=f"@{mention.acct} Sorry, something went wrong on my side while "
                      "handling this. Please try again later.",
                 visibility=reply_visibility(mention.visibility), created_at=now,
                 language=language, parent_key=reply_parent(mention))]


def format_audit(entries: Iterable[AuditEntry], tz: timezone = timezone.utc) -> str:
    """Return audit entries as lines for ``statusbot audit``: when, who, what, result.

    A collapsed row (another sender's mentions, ``AuditEntry.count`` above 1)
    says how many mentions it stands for and when the last one came; what it
    shows of the command is the first mention's.
    """
    lines = []
    for entry in entries:
        when = _when(entry.at, tz)
        who = _printable(f"@{entry.acct} ({entry.account_id})")
        what = _printable(f"{entry.command} {entry.args}".strip())
        times = ""
        if entry.count > 1:
            last = _when(entry.last_at if entry.last_at is not None else entry.at, tz)
            times = f"  [{entry.count} mentions, the last at {last}]"
        lines.append(f"{entry.seq or '-':>6}  {when}  {who}  {what}  -> "
                     f"{_printable(entry.result)}{times}")
    return "\n".join(lines)


def _when(at: float, tz: timezone) -> str:
    return datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _printable(text: str) -> str:
    """Return ``text`` with control, format and line-breaking characters escaped.

    A mention wrote it, and it goes to a terminal: no escape sequence, no
    forged line.
    """
    return "".join(c.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(c) in _UNPRINTABLE else c for c in text)


_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


# --- notification policy -----------------------------------------------------------------


class PolicyResult(enum.Enum):
    """What ``ensure_notification_policy`` found or did."""

    ALREADY = "already_accepting"
    CHANGED = "changed"
    NO_POLICY = "no_policy"
    FAILED = "failed"


_FILTERING = {
    "for_not_following": "accounts the bot does not follow (follow the admins)",
    "for_not_followers": "accounts that do not follow the bot",
    "for_new_accounts": "accounts younger than 30 days",
    "for_limited_accounts": "accounts limited by moderators",
}


def ensure_notification_policy(
        gateway: Gateway,
        wanted: Iterable[tuple[str, str]] = defaults.NOTIFICATION_POLICY,
) -> PolicyResult:
    """Make the notification policy let direct commands through; return what happened.

    Mastodon 4.3+ filters private mentions from accounts the bot does not
    follow by default: an admin's direct ``status`` would never reach it. The
    bot sets ``for_private_mentions`` to ``accept`` (``write:notifications``);
    anyone's mentions then arrive, and non-admins get the public subset or a
    refusal, within the reply limits. Other filtering fields are left as the
    operator set them, with a warning naming whom they hide. Never raises.
    """
    changes = dict(wanted)
    try:
        policy = gateway.notification_policy()
        if not policy:
            return PolicyResult.NO_POLICY
        for name, whom in _FILTERING.items():
            if policy.get(name, "accept") != "accept":
                log.warning("notification policy %s=%s: commands from %s do not reach the bot",
                            name, policy[name], whom)
        todo = {k: v for k, v in changes.items() if policy.get(k) != v}
        if not todo:
            return PolicyResult.ALREADY
        gateway.set_notification_policy(todo)
    except (RetryableError, PermanentError) as exc:
        log.error("cannot set the notification policy (%s): direct commands from accounts the "
                  "bot does not follow may be filtered; the token needs read:notifications and "
                  "write:notifications", exc)
        return PolicyResult.FAILED
    log.info("notification policy set: %s",
             ", ".join(f"{k}={v}" for k, v in sorted(todo.items())))
    return PolicyResult.CHANGED


# --- the intake ----------------------------------------------------------------------------


class Intake:
    """Supervises the user stream, backfills from the cursor, hands each new mention on once.

    The stream's callbacks run on Mastodon.py's thread and only put the
    mention on a queue; everything else (claims, the handler, the backfill)
    runs on the thread calling ``drain``, the tick loop's. Call ``drain`` often:
    ``drain(timeout=s)`` blocks up to ``s`` seconds for the next mention, so
    ``serve`` can fill the time between ticks and answer within milliseconds.

    ``stream=False`` polls only (every ``backfill_every`` seconds). A stream
    whose thread died is closed and restarted after a backoff
    (``restart_base`` doubling up to ``restart_cap``); every (re)connection
    and every death makes a backfill due.

    ``exempt`` names the senders the reply limits never stop (the admins: their
    commands always run; their replies count against the limits but are sent).
    ``audit_drop`` turns each mention dropped without running its command
    (rate limited, stale, from a bot) into audit entries, committed with its claim.
    """

    def __init__(
        self,
        store: Store,
        gateway: Gateway,
        handler: Handler,
        *,
        clock: Callable[[], float] = time.time,
        limiter: ReplyLimiter | None = None,
        stream: bool = True,
        backfill_every: float = defaults.MENTIONS_BACKFILL_EVERY,
        page_limit: int = defaults.MENTIONS_PAGE_LIMIT,
        max_pages: int = defaults.MENTIONS_MAX_PAGES,
        paginated_budget: int = defaults.MENTIONS_PAGINATED_BUDGET,
        paginated_window: float = defaults.MENTIONS_PAGINATED_WINDOW,
        restart_base: float = defaults.MENTIONS_RESTART_BASE,
        restart_cap: float = defaults.MENTIONS_RESTART_CAP,
        retry_base: float = defaults.MENTIONS_RETRY_BASE,
        retry_cap: float = defaults.MENTIONS_RETRY_CAP,
        max_age: float = defaults.MENTIONS_MAX_AGE,
        answer_bots: bool = defaults.MENTIONS_ANSWER_BOTS,
        queue_size: int = defaults.MENTIONS_QUEUE_SIZE,
        retention: float = defaults.NOTIFICATION_RETENTION,
        audit_retention: float = defaults.AUDIT_RETENTION,
        audit_max_rows: int = defaults.AUDIT_MAX_ROWS,
        audit_max_others: int = defaults.AUDIT_MAX_OTHERS,
        error_reply: ErrorReply = generic_error_reply,
        exempt: Exempt | None = None,
        audit_drop: DropAudit | None = None,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.handler = handler
        self.clock = clock
        self.limiter = limiter if limiter is not None else ReplyLimiter()
        self.use_stream = stream
        self.backfill_every = backfill_every
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.restart_base = restart_base
        self.restart_cap = restart_cap
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_age = max_age
        self.answer_bots = answer_bots
        self.retention = retention
        self.audit_retention = audit_retention
        self.audit_max_rows = audit_max_rows
        self.audit_max_others = audit_max_others
        self.error_reply = error_reply
        self.exempt = exempt
        self.audit_drop = audit_drop
        self.budget = TokenBucket(paginated_budget, paginated_window)
        self._queue: queue.Queue[Mention | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._connects = 0  # written by the stream thread, under _lock
        self._overflowed = False  # likewise
        self._seen_connects = 0
        self._handle: StreamHandle | None = None
        self._restart_at = 0.0
        self._restarts = 0
        self._state = StreamState.OFF if not stream else StreamState.CONNECTING
        self._backfill_due = True
        self._next_backfill_at = 0.0
        self._retry_at = 0.0
        self._failures = 0
        self._last_error: str | None = None
        self._budget_logged = False
        self._limited_logged: dict[str, float] = {}
        self._pruned_at = -math.inf
        self._audit_pruned_at = -math.inf
        self._audit_dirty = False
        now = clock()
        self._started_at = now
        self.limiter.restore(store.replied_since(
            now - max(self.limiter.account_window, self.limiter.overall.window)))

    def __repr__(self) -> str:
        return f"Intake(stream={self.use_stream}, backfill_every={self.backfill_every})"

    # --- the stream's thread ---------------------------------------------------------

    def _on_stream_mention(self, mention: Mention) -> None:
        try:
            self._queue.put_nowait(mention)
        except queue.Full:
            with self._lock:
                self._overflowed = True  # the backfill will fetch it

    def _on_stream_connect(self) -> None:
        with self._lock:
            self._connects += 1
        self.wake()

    def wake(self) -> None:
        """Make a blocked ``drain`` return now (thread-safe; for signal handlers and stops)."""
        with contextlib.suppress(queue.Full):  # a full queue wakes the drain anyway
            self._queue.put_nowait(None)

    # --- the loop's thread ---------------------------------------------------------------

    def start(self, ensure_policy: bool = True) -> PolicyResult | None:
        """Set the notification policy (unless told not to) and open the stream.

        A fresh state takes its cursor from the newest mention here, before
        the stream opens (or, when the instance does not answer, in the first
        ``drain``); the first backfill runs in the first ``drain``. Gateway
        errors never propagate.
        """
        result = ensure_notification_policy(self.gateway) if ensure_policy else None
        now = self.clock()
        if self._fresh():  # before the stream: every later mention lies after the cursor
            self._backfill(now)
        self._supervise(now)
        return result

    def close(self) -> None:
        """Stop the stream (the backfill cursor and claims are already stored)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
        self._state = StreamState.OFF if not self.use_stream else StreamState.DOWN
        self.wake()

    @property
    def stream_state(self) -> StreamState:
        """The stream as last seen: off, connecting, receiving or down."""
        return self._state

    @property
    def backfill_paused_until(self) -> float:
        """When polling may run again after a failure or a 429 (0: not paused)."""
        return self._retry_at

    def drain(self, timeout: float = 0.0, now: float | None = None) -> IntakeReport:
        """Handle what has arrived: supervise the stream, backfill when due, claim new mentions.

        With ``timeout`` > 0 and nothing to do yet, first wait up to that long
        for a mention from the stream (or until a backfill or a restart is
        due). ``now`` is the time to use; None reads the clock (after the
        wait). Store errors propagate (nothing is claimed then; the backfill
        fetches the mention again); gateway errors never do.
        """
        items = self._take(timeout)
        now = self.clock() if now is None else now
        handled: list[Handled] = []
        duplicates = 0
        try:
            self._supervise(now)
            self._observe(now)
            backfill, pages, new, dup = self._backfill(now)
            handled += new
            duplicates += dup
            for mention in items:
                result = self._handle_one(mention, Source.STREAM, now)
                if result is None:
                    duplicates += 1
                else:
                    handled.append(result)
            self._prune(now)
        except BaseException:
            # Mentions taken off the queue may be unclaimed: fetch them at the next drain.
            self._backfill_due = True
            raise
        return IntakeReport(handled=tuple(handled), duplicates=duplicates, backfill=backfill,
                            pages=pages, stream=self._state, cursor=self.store.mentions_cursor())

    def serve(self, seconds: float, stop: threading.Event | None = None,
              on_drain: Callable[[IntakeReport], None] | None = None, *,
              on_replies: Callable[[IntakeReport], None] | None = None,
              slice_s: float = 1.0) -> int:
        """Drain for ``seconds`` (or until ``stop``), blocking for mentions in between.

        What the tick loop runs instead of sleeping between ticks. ``on_drain``
        is called after every drain, at once when a mention was handled and
        about every ``slice_s`` seconds otherwise: deliver the outbox there
        (it makes no request when nothing is due), so a reply leaves within
        milliseconds and a failed one is retried on time. ``on_replies`` is
        called only after drains that queued replies. Returns how many
        mentions were handled. What a drain or a callback raises is logged
        (once while it repeats) and serving goes on.
        """
        deadline = time.monotonic() + seconds
        count = 0
        while not (stop is not None and stop.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                report = self.drain(timeout=min(slice_s, left))
                count += len(report.handled)
                if on_drain is not None:
                    on_drain(report)
                if on_replies is not None and report.replies:
                    on_replies(report)
            except Exception as exc:
                self._failed("mention intake", exc)
                pause = min(slice_s, max(0.0, deadline - time.monotonic()))
                if stop is not None:
                    stop.wait(pause)
                else:
                    time.sleep(pause)
        return count

    def _take(self, timeout: float) -> list[Mention]:
        got: list[Mention | None] = []
        if timeout > 0 and self._queue.empty() and not self._pending_work():
            wait = min(timeout, max(0.0, self._next_wakeup() - self.clock()))
            if wait > 0:
                with contextlib.suppress(queue.Empty):
                    got.append(self._queue.get(timeout=wait))
        while True:
            try:
                got.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [m for m in got if m is not None]

    def _pending_work(self) -> bool:
        with self._lock:
            return self._connects != self._seen_connects or self._overflowed

    def _next_wakeup(self) -> float:
        now = self.clock()
        at = self._backfill_ready_at(now) if self._backfill_due else self._next_backfill_at
        if self.use_stream and self._handle is None:
            at = min(at, self._restart_at)
        return at

    def _backfill_ready_at(self, now: float) -> float:
        return max(self._retry_at, self.budget.ready_at(now))

    # --- stream supervision ------------------------------------------------------------

    def _supervise(self, now: float) -> None:
        if not self.use_stream:
            return
        handle = self._handle
        if handle is not None:
            if handle.is_alive():
                self._state = (StreamState.RECEIVING if handle.is_receiving()
                               else StreamState.CONNECTING)
                return
            self._handle = None
            try:
                handle.close()
            except Exception as exc:
                log.debug("closing the dead stream: %s", exc)
            self._restarts += 1
            delay = backoff_delay(self._restarts, self.restart_base, self.restart_cap)
            self._restart_at = now + delay
            self._backfill_due = True
            self._state = StreamState.DOWN
            log.warning("the mention stream stopped; restarting it in %.0f s (polling meanwhile)",
                        delay)
        if now < self._restart_at:
            return
        try:
            self._handle = self.gateway.stream_mentions(self._on_stream_mention,
                                                        self._on_stream_connect)
        except (RetryableError, PermanentError) as exc:
            self._restarts += 1
            delay = backoff_delay(self._restarts, self.restart_base, self.restart_cap)
            self._restart_at = now + delay
            self._state = StreamState.DOWN
            log.warning("cannot open the mention stream (%s); trying again in %.0f s", exc, delay)
            return
        self._state = (StreamState.RECEIVING if self._handle.is_receiving()
                       else StreamState.CONNECTING)

    def _observe(self, now: float) -> None:
        """Take in what the stream's thread signalled: (re)connections and overflow."""
        with self._lock:
            connects, overflowed = self._connects, self._overflowed
            self._overflowed = False
        if connects != self._seen_connects:
            log.info("mention stream %s; backfilling",
                     "connected" if self._seen_connects == 0 else "reconnected")
            self._seen_connects = connects
            self._restarts = 0
            self._backfill_due = True
        if overflowed:
            log.warning("too many mentions waiting; the backfill fetches the ones dropped")
            self._backfill_due = True

    # --- backfill -------------------------------------------------------------------------

    def _backfill(self, now: float) -> tuple[Backfill, int, list[Handled], int]:
        if now >= self._next_backfill_at:
            self._backfill_due = True
        if not self._backfill_due:
            return Backfill.NOT_DUE, 0, [], 0
        if now < self._retry_at:
            return Backfill.PAUSED, 0, [], 0
        pages = min(self.max_pages, math.floor(self.budget.level(now)))
        if pages < 1:
            if not self._budget_logged:
                log.warning("mention backfill waits: %d paginated requests per %.0f s spent",
                            self.budget.capacity, self.budget.window)
                self._budget_logged = True
            return Backfill.OUT_OF_BUDGET, 0, [], 0
        self._budget_logged = False
        cursor = self.store.mentions_cursor()
        fresh = self._fresh()
        if fresh:
            pages = 1
        before = self.gateway.calls
        try:
            mentions = self.gateway.mentions_since(cursor, self.page_limit, pages)
        except (RetryableError, PermanentError) as exc:
            self._failures += 1
            wait = backoff_delay(self._failures, self.retry_base, self.retry_cap)
            retry_at = getattr(exc, "retry_at", None)
            self._retry_at = retry_at if retry_at is not None else now + wait
            self._failed("mention backfill", exc)
            return Backfill.FAILED, max(1, self.gateway.calls - before), [], 0
        finally:
            self.budget.take(now, max(1, self.gateway.calls - before))
        used = max(1, self.gateway.calls - before)
        if self._last_error is not None:
            log.warning("mention backfill works again (last error: %s)", self._last_error)
            self._last_error = None
        self._failures = 0
        self._next_backfill_at = now + self.backfill_every
        if fresh:
            return (Backfill.RAN, used, *self._baseline(mentions, now))
        # All pages used without reaching an empty one: more may be waiting.
        self._backfill_due = bool(mentions) and used >= pages
        handled: list[Handled] = []
        duplicates = 0
        last: str | None = None
        try:
            for mention in mentions:
                result = self._handle_one(mention, Source.BACKFILL, now)
                if result is None:
                    duplicates += 1
                else:
                    handled.append(result)
                last = mention.notification_id
        finally:
            if last is not None:
                self.store.advance_mentions_cursor(last)
        return Backfill.RAN, used, handled, duplicates

    def _fresh(self) -> bool:
        """Return True for a state that never had a cursor: no mention was ever looked at."""
        return (self.store.mentions_cursor() is None
                and self.store.get_state(BASELINE_STATE) is None)

    def _baseline(self, newest: Sequence[Mention], now: float) -> tuple[list[Handled], int]:
        """Start a fresh state's cursor at the newest mention; act on none from before the start.

        A lost state file must not replay what the bot answered before (an
        admin's ``incident`` posted twice): what the account was mentioned in
        before this intake started is left alone, however recent. Mentions
        made since (when the instance could not be asked at once) are handled.
        """
        earlier = [m for m in newest if not m.created_at >= self._started_at]
        later = [m for m in newest if m.created_at >= self._started_at]
        last = max((m.notification_id for m in earlier), key=id_order, default=None)
        if last is not None:
            self.store.advance_mentions_cursor(last)
            log.warning("fresh state: %d earlier mention(s) left alone, the newest %s; only "
                        "mentions after it are acted on", len(earlier), last)
        self.store.put_state(BASELINE_STATE, {"at": now, "cursor": last})
        handled: list[Handled] = []
        duplicates = 0
        for mention in later:
            result = self._handle_one(mention, Source.BACKFILL, now)
            if result is None:
                duplicates += 1
            else:
                handled.append(result)
            self.store.advance_mentions_cursor(mention.notification_id)
        # The cursor is set: fetch what came after it at once (usually nothing).
        self._backfill_due = bool(newest)
        return handled, duplicates

    def _failed(self, what: str, exc: Exception) -> None:
        signature = f"{type(exc).__name__}: {exc}"
        if signature != self._last_error:
            log.warning("%s failed (logged once while it repeats): %s", what, signature)
            self._last_error = signature

    # --- one mention ----------------------------------------------------------------------

    def _handle_one(self, mention: Mention, source: Source, now: float) -> Handled | None:
        """Claim ``mention`` if new, with its replies; None when it was handled before."""
        if self.store.is_handled(mention.notification_id):
            return None
        outcome = Outcome()
        exempt: bool | None = None  # asked once, when the limits or the audit need it
        if mention.created_at > 0 and now - mention.created_at > self.max_age:
            result = Result.STALE
            outcome = self._dropped(mention, f"older than {self.max_age:.0f} s", now)
        elif mention.bot and not self.answer_bots:
            result = Result.IGNORED_BOT
            outcome = self._dropped(mention, "bot account", now)
        else:
            limit = self.limiter.check(mention.account_id, now)
            if limit is Limit.ALLOWED:
                result, outcome = self._call_handler(mention, now)
            elif exempt := self._is_exempt(mention):
                # An admin's command always runs: only its reply is over the limit.
                result, outcome = self._call_handler(mention, now)
                outcome = _over_limit(outcome, limit)
                log.info("mention %s from @%s: %s, but exempt (admin)",
                         mention.notification_id, mention.acct, limit.value)
            else:
                result = Result.RATE_LIMITED
                outcome = self._dropped(mention, f"rate limited: {limit.name.lower()}", now,
                                        detail=limit.name.lower())
                self._log_limited(mention, limit, now)
        posts = tuple(outcome.posts)
        # Another sender's entries are collapsed and capped: what a flood writes.
        if exempt is None and outcome.audit:
            exempt = self._is_exempt(mention)
        admin = exempt is True
        audit = tuple(dataclasses.replace(
            entry, notification_id=entry.notification_id if entry.notification_id is not None
            else mention.notification_id, admin=entry.admin and admin) for entry in outcome.audit)
        text = result.value + (f": {outcome.detail}" if outcome.detail else "")
        claimed = self.store.claim_and_enqueue(
            mention.notification_id, posts, at=now, result=text, account_id=mention.account_id,
            audit=audit, states=dict(outcome.states))
        if not claimed:
            return None
        if not admin and audit:
            self._audit_dirty = True
        replies = sum(1 for p in posts if p.kind is PostKind.REPLY)
        if replies:  # what a command posts for members is not a reply to the sender
            self.limiter.record(mention.account_id, now, replies)
        log.info("mention %s from @%s via %s: %s", mention.notification_id, mention.acct,
                 source.value, text)
        return Handled(mention.notification_id, mention.acct, source, result, outcome.detail,
                       len(posts))

    def _is_exempt(self, mention: Mention) -> bool:
        if self.exempt is None:
            return False
        try:
            return self.exempt(mention) is True
        except Exception:  # fails closed: the limits apply
            log.exception("checking whether @%s is exempt from the reply limits failed",
                          mention.acct)
            return False

    def _dropped(self, mention: Mention, why: str, now: float, detail: str = "") -> Outcome:
        """Return the outcome of a mention dropped unrun: no reply, an audit entry."""
        audit: Sequence[AuditEntry] = ()
        if self.audit_drop is not None:
            try:
                audit = tuple(self.audit_drop(mention, why, now))
            except Exception:
                log.exception("describing the dropped mention %s for the audit failed",
                              mention.notification_id)
                audit = (AuditEntry(at=now, account_id=mention.account_id, acct=mention.acct,
                                    command="?", args="", result=f"dropped: {why}"),)
        return Outcome(detail=detail, audit=audit)

    def _call_handler(self, mention: Mention, now: float) -> tuple[Result, Outcome]:
        try:
            answer = self.handler(mention)
            outcome = answer if isinstance(answer, Outcome) else Outcome(posts=tuple(answer))
        except Exception as exc:
            log.exception("handling mention %s from @%s failed; answering generically",
                          mention.notification_id, mention.acct)
            try:
                posts = tuple(self.error_reply(mention, now))
            except Exception:
                log.exception("composing the generic reply failed too")
                posts = ()
            # Nothing the command changed is committed: it was dropped, and the audit says so.
            audit = self._dropped(mention, f"failed: {type(exc).__name__}", now).audit
            return Result.ERROR, Outcome(posts=posts, detail=type(exc).__name__, audit=audit)
        return (Result.ANSWERED if outcome.posts else Result.NO_REPLY), outcome

    def _log_limited(self, mention: Mention, limit: Limit, now: float) -> None:
        key = mention.account_id if limit is Limit.ACCOUNT else ""
        last = self._limited_logged.get(key)
        if last is not None and now - last < self.limiter.account_window:
            log.debug("mention %s from @%s not answered: %s", mention.notification_id,
                      mention.acct, limit.value)
            return
        if len(self._limited_logged) >= self.limiter.max_accounts:
            self._limited_logged.clear()
        self._limited_logged[key] = now
        log.warning("mention %s from @%s not answered: %s (logged once per %.0f s)",
                    mention.notification_id, mention.acct, limit.value,
                    self.limiter.account_window)

    def _prune(self, now: float) -> None:
        if self._audit_dirty or now - self._audit_pruned_at >= defaults.AUDIT_PRUNE_EVERY:
            self._prune_audit(now)
        if now - self._pruned_at < 86400.0:
            return
        self._pruned_at = now
        gone = self.store.prune_notifications(now - self.retention)
        if gone:
            log.info("forgot %d handled notification ids older than %.0f days", gone,
                     self.retention / 86400.0)

    def _prune_audit(self, now: float) -> None:
        """Keep the audit log within its retention and caps (``Store.prune_audit``).

        After every drain that audited another sender's mention, so a flood
        leaves at most ``audit_max_others`` such rows once the drain is done,
        and otherwise every ``AUDIT_PRUNE_EVERY`` seconds for the retention.
        Each prune walks indexes only (at most ``audit_max_rows`` entries).
        """
        self._audit_pruned_at = now
        self._audit_dirty = False
        gone = self.store.prune_audit(now - self.audit_retention, self.audit_max_rows,
                                      self.audit_max_others)
        if gone:
            log.info("pruned %d audit rows (older than %.0f days, or beyond %d rows, %d of "
                     "them other senders')", gone, self.audit_retention / 86400.0,
                     self.audit_max_rows, self.audit_max_others)
