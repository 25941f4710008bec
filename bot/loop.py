"""The tick loop: collect, evaluate, step the incident, compose, enqueue, deliver.

One ``Bot.tick`` is one pass of the data flow in DESIGN.md. The pure core
(``health``, ``incidents``, ``compose``) decides; this module only moves data
between it and the edges (collectors, store, outbox). ``run`` repeats ticks
every ``interval`` until asked to stop: SIGTERM or SIGINT let the current tick
finish, then what can be delivered is flushed and the loop returns. A second
signal interrupts at once (``KeyboardInterrupt``): a running tick's transaction
is not committed, nothing is flushed, and the next start repeats that tick from
the stored state.

Crash safety: the posts a tick composes and the health and incident state it
produced are written in one SQLite transaction, before any network call. A
crash before that commit repeats the tick from the old state; a crash after
it finds the posts in the outbox.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from bot import advising, compose, health, incidents, report, reporting
from bot.adopt import Adopter, state_lost_notice
from bot.chart import ChartError, render_chart
from bot.collect import Collector
from bot.collect.database import DatabaseReader
from bot.collect.instance import InstanceProber
from bot.collect.jobmetrics import JobMetricsReader
from bot.compose import MEMBER_KINDS
from bot.config import ReportsConfig
from bot.fallback import FALLBACK_STATE, Fallbacks
from bot.fallback import Reason as FallbackReason
from bot.gateway import Gateway, PermanentError, RetryableError
from bot.handlers import (
    CONFIRM_STATE,
    MUTES_STATE,
    mutes_state,
    post_from_json,
    post_to_json,
    runtime_mutes,
)
from bot.history import History, host_samples_from, sample_from
from bot.lease import Election, Role
from bot.mentions import Intake
from bot.model import Event, EventKind, Finding, InstanceHealth, Post, PostKind, Snapshot
from bot.outbox import DeliveryReport, Outbox, backoff_delay
from bot.store import ADOPT_STATE, Store, damage_of

if TYPE_CHECKING:  # the status page is imported only when configured (app.start_page)
    from bot.handlers import RuntimeMute
    from bot.pagetick import PageTick

log = logging.getLogger(__name__)

_SETUP_RETRY = 300.0
"""Seconds between attempts to start the mention intake while the instance cannot be asked."""

GC_EVERY = 60.0
"""Seconds between full garbage collections while running (see ``GcPacer``)."""

RECENT_EVERY = 60.0
"""Seconds between the snapshots kept for the capacity advice's backlog growth."""

RECENT_SNAPSHOTS = 17
"""Snapshots kept for the advice: a quarter hour (the job metrics' window) and one more."""


class GcPacer:
    """Say when a full ``gc.collect()`` is due: every ``every`` seconds of ``now``.

    Each tick leaves a few reference cycles (redis-py's INFO parser makes one),
    which survive into the oldest generation; with the tens of thousands of
    long-lived objects of the imports, CPython's own full collection comes only
    after tens of minutes, so RSS crept up ~0.1 MB a minute meanwhile
    (bench/soak.py). A full collection a minute keeps it flat for a few ms.
    """

    def __init__(self, every: float = GC_EVERY) -> None:
        self.every = every
        self._next: float | None = None

    def due(self, now: float) -> bool:
        """Return True when a collection is due at monotonic ``now``."""
        if self._next is None:
            self._next = now + self.every
            return False
        if now < self._next:
            return False
        self._next = max(self._next, now) + self.every
        return True


def release_memory() -> None:
    """Collect garbage cycles, then hand the freed heap back to the system.

    ``malloc_trim`` (glibc) returns the free pages that Python's frees left
    in the middle of the C heap; without it RSS keeps the high-water mark of
    start-up (about 0.2 MB here). Elsewhere (musl, macOS) only the collection runs.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_REPORT_LATE = 86400.0
"""Seconds after its slot a report may still go out (a bot down over the slot posts late)."""

_KEEP_ENDED = 86400.0
"""Seconds an ended silence or maintenance window is kept (so its end post goes out)."""

HEALTH_STATE = "health"
INCIDENT_STATE = "incidents"
PROFILE_STATE = "profile"
NO_SIDEKIQ_STATE = "no-sidekiq"
ADMIN_ONLY_STATE = "admin-only"
LEFT_TO_LEADER_STATE = "standby.left-to-leader"
"""When a standby last saw the periodic status post due (the leader posted it then)."""
"""Named state of the incident only admins hear about (hosts that are not member-visible)."""
REPORTS_STATE = "reports"
"""Named state of the report schedule: ``first_start`` (epoch seconds of the first tick that
kept reports) and ``skipped`` (keys of reports decided not to be posted, with why)."""

_SKIPPED_KEPT = 16
"""Skipped report keys remembered (each is looked at only in the day after its slot)."""


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick saw, decided and did (logged, and printed by ``--dry-run``)."""

    at: float
    snapshot: Snapshot
    instance: InstanceHealth | None
    findings: tuple[Finding, ...]
    events: tuple[Event, ...]
    posts: tuple[Post, ...]
    new_posts: int
    delivery: DeliveryReport | None
    profile: str | None = None
    notes: tuple[str, ...] = field(default=())


class Bot:
    """The bot's moving parts, wired for ticks.

    Everything with a side effect is passed in, so tests can hand in real
    servers or fakes alike.
    """

    def __init__(
        self,
        *,
        collector: Collector,
        store: Store,
        outbox: Outbox,
        gateway: Gateway,
        settings: compose.Settings,
        rules: health.Rules,
        policy: incidents.Policy,
        host_rules: Mapping[str, health.Rules] | None = None,
        mutes: Sequence[health.Mute] = (),
        prober: InstanceProber | None = None,
        status_every: float = 0.0,
        profile_field: bool = True,
        heartbeat: Path | None = None,
        confirm_delay: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.collector = collector
        self.store = store
        self.outbox = outbox
        self.gateway = gateway
        self.settings = settings
        self.rules = rules
        self.policy = policy
        self.host_rules: Mapping[str, health.Rules] = dict(host_rules or {})
        """Other hosts' own rules by host name (``[[hosts]]`` entries' ``health``)."""
        self.mutes = tuple(mutes)
        self.prober = prober
        self.status_every = status_every
        self.profile_field = profile_field
        self.heartbeat = heartbeat
        self.confirm_delay = confirm_delay
        self.last_snapshot: Snapshot | None = None
        self.metrics_reader: JobMetricsReader | None = None
        """Sidekiq's job metrics (at most one Redis read a minute), for the capacity advice;
        read in the collecting part of a tick only while some queue is waiting."""
        self.database_reader: DatabaseReader | None = None
        """PostgreSQL's connections for the capacity advice (at most one reading a minute,
        bounded by its timeout); None: no database configured."""
        self.recent_snapshots: deque[Snapshot] = deque(maxlen=RECENT_SNAPSHOTS)
        """Snapshots at least ``RECENT_EVERY`` apart, the newest last (backlog growth for
        the capacity advice)."""
        self.intake: Intake | None = None
        self.setup_commands: Callable[[], Intake | None] | None = None
        self.history: History | None = None
        self.reports: ReportsConfig | None = None
        self.reports_dir: Path | None = None
        self.daily_counters: reporting.DailyCounters | None = None
        self._setup_due = 0.0
        self.clock = clock
        self.adopter: Adopter | None = None
        """Picks up pinned notices on a fresh state file (``bot/adopt.py``); None: never."""
        self.state_problem: str | None = None
        """What happened to the state file while running (lost, replaced, damaged), or None."""
        self.fallbacks: Fallbacks | None = None
        """The fallback accounts on other servers (``bot/fallback.py``); None: none configured."""
        self._fallback_error: str | None = None
        self._last_beat = 0.0
        self._last_error: str | None = None
        self._profile_failures = 0
        self._profile_retry_at = 0.0
        self.page: PageTick | None = None
        """Keeps the status page written and published (``bot/pagetick.py``); None: no page."""
        self.page_setup: Callable[[float], PageTick] | None = None
        """Makes ``page`` on the first tick when ``[page] dir`` is set (``app.start_page``)."""
        self.election: Election | None = None
        """The standby lease (``[bot] standby``, ``bot/lease.py``); None: this bot always leads."""
        self.adopt_on_takeover = False
        """On becoming leader, pick up the account's pinned notice (``bot/adopt.py``)."""
        self._lease_retry_in: float | None = None
        self._held_elsewhere = False
        self._announce_after_takeover = False

    @property
    def role(self) -> str | None:
        """``leader`` or ``standby`` with ``[bot] standby``; None without it."""
        return None if self.election is None else self.election.role.value

    @property
    def leading(self) -> bool:
        """True when this bot posts (always, without ``[bot] standby``)."""
        return self.election is None or self.election.leading

    # --- state --------------------------------------------------------------------

    def health_state(self) -> health.HealthState:
        """Return the stored health state (a fresh one when none, or unreadable)."""
        data = self.store.get_state(HEALTH_STATE)
        if data is not None:
            try:
                return health.HealthState.from_json(data)
            except ValueError as exc:
                log.error("stored health state unreadable, starting afresh: %s", exc)
        return health.HealthState.initial()

    def incident_state(self) -> incidents.IncidentState:
        """Return the stored incident state (none open when none is stored).

        An unreadable state is kept aside under another name for an admin to
        look at, never silently dropped.
        """
        data = self.store.get_state(INCIDENT_STATE)
        if data is not None:
            try:
                return incidents.IncidentState.from_json(data)
            except ValueError as exc:
                log.error("stored incident state unreadable, kept as %s.broken: %s",
                          INCIDENT_STATE, exc)
                self.store.put_state(f"{INCIDENT_STATE}.broken", data)
        return incidents.IncidentState()

    # --- one tick -----------------------------------------------------------------

    def tick(self) -> TickReport:
        """Run one pass: collect, evaluate, step, compose, store, deliver.

        With ``[bot] standby`` the lease is asked first (``_elect``). A standby
        collects, evaluates and keeps its state and history like the leader
        (so it can take over where the leader is), but posts nothing: the
        tick's posts are left to the leader and only the state is committed,
        which also marks what the leader told (admin-only hosts, "no
        Sidekiq") as told. It does not deliver, update the profile, write the
        status page or plan the fallback accounts.
        """
        standby_reason = self._elect()
        self._check_state_file()
        snapshot = self.collector.collect()
        self.last_snapshot = snapshot
        recent = self.recent_snapshots
        if not recent or not 0 <= snapshot.collected_at - recent[-1].collected_at < RECENT_EVERY:
            recent.append(snapshot)
        metrics = None
        if self.metrics_reader is not None and advising.queue_waiting(snapshot):
            metrics = self.metrics_reader.read(
                [*(s for s in recent if s is not snapshot), snapshot],
                advising.oldest_classes(snapshot))
        instance = self.prober.read() if self.prober is not None else None
        now = snapshot.collected_at
        windows = [m for m in runtime_mutes(self.store) if m.end + _KEEP_ENDED > now]
        mutes = (*self.mutes, *(m.mute() for m in windows))
        health_state, findings = health.evaluate(
            snapshot, self.health_state(), self.rules, now, mutes, instance=instance,
            host_rules=self.host_rules)
        incident_state, events = incidents.step(self.incident_state(), findings, now, self.policy)
        if standby_reason is None and self._announce_after_takeover:
            events = (*events, *self._takeover_notice(incident_state, events, now))
        posts: list[Post] = []
        for event in events:
            log.info("incident %s %s: %s", event.incident.id, event.kind.value, event.reason)
            help_text = None
            if compose.wants_advice(event) and self.settings.admin_accts:
                database = (None if self.database_reader is None
                            else self.database_reader.read())
                help_text = advising.help_text(snapshot, metrics, self.history,
                                               self.settings.wording, database)
            posts.extend(compose.compose_event(event, snapshot, self.settings, help_text))
        states: dict[str, dict[str, Any]] = {HEALTH_STATE: health_state.to_json(),
                                             INCIDENT_STATE: incident_state.to_json(),
                                             MUTES_STATE: mutes_state(windows)}
        notes: list[str] = []
        if self.confirm_delay is not None:
            posts, confirm = self._hold_for_confirmation(posts, events, now, notes,
                                                         self.confirm_delay)
            if confirm is not None:
                states[CONFIRM_STATE] = confirm
        for window in windows:
            if window.kind == "maintenance":
                posts += [compose.maintenance_post(window.id, phase, window.start, window.end,
                                                   window.text, now, self.settings)
                          for phase, at in (("start", window.start), ("end", window.end))
                          if at <= now]
        posts += self._admin_only_posts(findings, snapshot, now, states, notes)
        told = self._no_sidekiq_notice(findings, snapshot, now, states)
        if told is not None:
            posts.append(told)
            notes.append("the Redis read holds no trace of Sidekiq: admins told")
        if standby_reason is not None:
            if self._held_elsewhere:
                self._leave_pending_to_leader(now, notes)
            # What falls due while standing by is the leader's to post: remember it as
            # done, so that taking over never repeats today's status post or a report.
            if self._status_due(snapshot, incident_state, now):
                states[LEFT_TO_LEADER_STATE] = {"status": now}
            self._due_reports(now, incident_state, notes, standby=True)
            self.store.commit_tick([], states)
            self._keep_history(snapshot, incident_state, events, now)
            notes.append(f"standby ({standby_reason}): {len(posts)} post(s) left to the leader")
            return TickReport(now, snapshot, instance, findings, events, (), 0, None, None,
                              tuple(notes))
        status = self._status_post(snapshot, incident_state, now)
        if status is not None:
            posts.append(status)
            notes.append(f"status post {status.key} due")
        if self.reports is not None:
            posts += self._due_reports(now, incident_state, notes)
        if self.fallbacks is not None:
            planned = any(m.active(now) and m.covers("web") for m in mutes)
            posts += self._fallback_posts(now, instance, incident_state, states, notes,
                                          planned=planned)
        new = self.store.commit_tick(posts, states)
        may_deliver = self.adopter is None or self.adopter.step(
            incident_state.open, not health_state.components, now)
        self._keep_history(snapshot, incident_state, events, now)
        profile = self._update_profile(incident_state, now) if self.profile_field else None
        if may_deliver and self.election is not None and not self.election.still_leading():
            may_deliver = False
            notes.append("standby lease lost during this tick: nothing delivered")
            if self.intake is not None:
                self.intake.close()
                self.intake = None
        delivery = self.outbox.deliver(self.clock()) if may_deliver else None
        for failure in delivery.failures if delivery is not None else ():
            log.error("post %s failed for good: %s", failure.key, failure.error)
        if self.fallbacks is not None:
            self.fallbacks.deliver()  # each fallback on its own; never raises
        self._update_page(incident_state, windows, now)
        return TickReport(now, snapshot, instance, findings, events, tuple(posts), new, delivery,
                          profile, tuple(notes))

    # --- the standby lease (bot/lease.py) -------------------------------------------

    def _elect(self) -> str | None:
        """Ask the lease; return None when this bot leads, else why it stands by.

        On becoming leader (at the first tick, or taking over from a leader
        that stopped) the account's pinned notice is picked up before this
        tick's incident step (``Adopter``, as after a lost state file): the
        incident this bot has been following as a standby continues in the
        thread the old leader opened, so no second notice; one it did not
        see open is closed there when all is well. It runs before the step
        so that a resolution composed in this very tick already has its
        parent. Stepping down closes the mention intake.
        """
        if self.election is None:
            return None
        decision = self.election.step()
        self._lease_retry_in = decision.retry_in
        self._held_elsewhere = decision.held_elsewhere
        if decision.changed and decision.role is Role.LEADER:
            self._setup_due = 0.0
            self._announce_after_takeover = True
            if self.adopt_on_takeover:
                now = self.clock()
                self.store.put_state(ADOPT_STATE, {"since": now})
                self.adopter = Adopter(self.store, self.gateway, self.settings, takeover=True)
                self.adopter.step(self.incident_state().open,
                                  not self.health_state().components, now)
        elif decision.changed and self.intake is not None:
            self.intake.close()
            self.intake = None
        return None if decision.role is Role.LEADER else decision.reason

    def _takeover_notice(self, state: incidents.IncidentState, events: Sequence[Event],
                         now: float) -> list[Event]:
        """Return an "opened" event for the open incident when its notice never reached us.

        After a takeover, once the pinned notices were looked at (``Adopter``):
        an incident this bot followed as a standby whose notice the old leader
        never posted (it died first, or the instance was down) has neither an
        adopted notice nor a queued one, and members would hear nothing of it.
        It is announced now, under its usual key, so its updates and resolution
        thread under it.
        """
        if self.adopter is not None and not self.adopter.done:
            return []
        self._announce_after_takeover = False
        incident = state.open
        if (incident is None or self.store.get(f"{incident.id}:0") is not None
                or any(e.incident.id == incident.id and e.kind is EventKind.OPENED
                       for e in events)):
            return []
        log.warning("incident %s: no notice on the account after the takeover: announcing it",
                    incident.id)
        return [Event(EventKind.OPENED, incident, now,
                      "taken over: the old leader's notice never reached the account")]

    def _leave_pending_to_leader(self, now: float, notes: list[str]) -> None:
        """Drop this bot's unsent posts while another bot leads: they are the leader's now.

        Rows left from a time this bot led (it was killed, or lost the lease
        with posts queued, perhaps while the instance was down): sent late, on
        a later takeover, they would repeat or contradict what the leader told
        meanwhile. Only while Redis names another holder; a standby that cannot
        ask Redis keeps them, since it may be the only bot there is. They are
        forgotten, not folded: a notice among them then counts as never queued,
        so a later takeover adopts the leader's pinned notice in its place (or
        announces the incident anew if there is none). The log names them.
        """
        keys = [item.key for item in self.store.pending()]
        if not keys:
            return
        dropped = self.store.forget_unsent(keys)
        notes.append(f"standby: {dropped} unsent post(s) left to the leader")
        log.warning("standby: %d unsent post(s) from when this bot led dropped (another bot "
                    "leads and speaks for the account): %s", dropped, ", ".join(keys[:10]))

    # --- fallback accounts on other servers (bot/fallback.py) -----------------------

    def _fallback_posts(self, now: float, instance: InstanceHealth | None,
                        state: incidents.IncidentState, states: dict[str, dict[str, Any]],
                        notes: list[str], *, planned: bool = False) -> list[Post]:
        """Return the fallback accounts' posts of this tick; their state joins ``states``.

        ``planned``: a maintenance window or silence covers the website now.

        Committed with the tick's own posts and state, so a restart neither
        loses nor repeats a fallback post. A failure here is logged (once while
        it repeats) and costs only the fallback posts of this tick.
        """
        if self.fallbacks is None:
            return []
        try:
            posts, value, decisions = self.fallbacks.plan(now, instance, state.open,
                                                             planned=planned)
        except Exception as exc:
            signature = f"{type(exc).__name__}: {exc}"
            if signature != self._fallback_error:
                log.error("fallback accounts not planned (logged once while it repeats): %s",
                          signature, exc_info=exc)
                self._fallback_error = signature
            return []
        self._fallback_error = None
        states[FALLBACK_STATE] = value
        told = (FallbackReason.NOTICE, FallbackReason.UPDATE, FallbackReason.REMINDER,
                FallbackReason.RESOLVED)
        notes += [f"fallback {d.destination}: {d.reason.value} ({d.detail})"
                  for d in decisions if d.reason in told]
        return posts

    def _update_page(self, state: incidents.IncidentState, windows: Sequence[RuntimeMute],
                     now: float) -> None:
        """Keep the status page current, after the posts are safe and sent; never raises.

        Costs one read of the open thread on a tick where nothing the page
        shows changed (bench/page_bench.py); publishing runs in the background.
        """
        if self.page is None and self.page_setup is not None:
            try:
                self.page = self.page_setup(now)
            except Exception as exc:  # tried again next tick
                self._tick_failed(exc)
                return
            self.page_setup = None
        if self.page is not None:
            self.page.step(state.open, (*self.mutes, *windows), now)

    def _close_page(self) -> None:
        """Let a publish run in flight finish briefly, then stop it (at the loop's end)."""
        if self.page is not None:
            self.page.close()

    def _check_state_file(self) -> None:
        """Notice the state file disappearing or being replaced under the running bot.

        The open file keeps working, so the bot goes on; but a restart would
        start from whatever the path holds then. Logged and told to the admins
        once per problem, and written with every heartbeat (healthcheck fails).
        """
        problem = self.store.file_problem()
        if problem is None or f"state file {problem}" == self.state_problem:
            return
        lost = f"state file {problem}"
        log.error("%s: going on with the open copy; restart the bot (an empty state picks "
                  "up its pinned notice) or put the file back", lost)
        notice = state_lost_notice(lost, self.clock(), self.settings)
        if notice is not None:
            self.store.enqueue([notice])
        self.state_problem = lost  # after the enqueue: a failed one is tried again next tick

    def _keep_history(self, snapshot: Snapshot, state: incidents.IncidentState,
                      events: Sequence[Event], now: float) -> None:
        """Record the sample, each host's memory and resolved incidents; compact at times."""
        if self.history is None:
            return
        try:
            self.history.record(sample_from(snapshot, state.open is not None))
            self.history.record_hosts(snapshot.collected_at, host_samples_from(snapshot))
            for event in events:
                if event.kind is EventKind.RESOLVED:
                    self.history.record_incident(event.incident)
            self.history.maybe_compact(now)
        except Exception as exc:
            self._tick_failed(exc)

    def _due_reports(self, now: float, state: incidents.IncidentState,
                     notes: list[str], standby: bool = False) -> list[Post]:
        """Return the weekly digest and the monthly report when their time has come.

        A report is due in the day after its slot and only if its key was never
        queued: a restart or a long tick never posts one twice, and a bot that
        was down over the slot posts it late rather than never, for a day.
        It is not posted about time the bot did not watch
        (``reporting.skip_reason``): a period that ended before the bot's first
        start, or one it watched less than ``defaults.REPORT_MIN_WATCHED`` of.
        That decision is final for the period, noted once and remembered.
        A ``standby`` posts none: what is due is the leader's, and is remembered
        as skipped ("left to the leader") so that a takeover never repeats it.
        """
        config, history = self.reports, self.history
        if config is None or history is None or self.daily_counters is None:
            return []
        record = self._reports_state(now)
        skipped: dict[str, str] = record["skipped"]
        posts: list[Post] = []
        tz = self.settings.timezone
        candidates = []
        if config.weekly is not None:
            candidates.append(reporting.last_weekly(now, config.weekly, tz))
        if config.monthly is not None:
            candidates.append(reporting.last_monthly(now, config.monthly, tz))
        for due in candidates:
            if (now - due.end > _REPORT_LATE or due.key in skipped
                    or self.store.get(due.key) is not None):
                continue
            try:
                reason = ("left to the leader (this bot was standby)" if standby else
                          reporting.skip_reason(due, record["first_start"],
                                                history.coverage(due.start, due.end)))
                if reason is not None:
                    skipped[due.key] = reason
                    self.store.put_state(REPORTS_STATE, {
                        "first_start": record["first_start"],
                        "skipped": dict(list(skipped.items())[-_SKIPPED_KEPT:])})
                    notes.append(f"{due.kind} report {due.key} not posted: {reason}")
                    log.info("%s report %s not posted: %s", due.kind, due.key, reason)
                    continue
                posts.append(self._report_post(due, now, state, config, history))
            except Exception as exc:
                self._tick_failed(exc)
                continue
            notes.append(f"{due.kind} report {due.key} due")
        return posts

    def _reports_state(self, now: float) -> dict[str, Any]:
        """Return the stored report schedule state; the first call records ``now`` as first start.

        An unreadable record is replaced by one starting ``now`` (so no report
        is posted about a period before it), and said so in the log.
        """
        data = self.store.get_state(REPORTS_STATE)
        first = data.get("first_start") if data is not None else None
        skipped = data.get("skipped") if data is not None else None
        if isinstance(first, (int, float)) and not isinstance(first, bool) \
                and math.isfinite(first) and isinstance(skipped, dict):
            return {"first_start": float(first),
                    "skipped": {str(k): str(v) for k, v in skipped.items()}}
        if data is not None:
            log.error("stored report state unreadable, first start taken as now: %.200r", data)
        record: dict[str, Any] = {"first_start": now, "skipped": {}}
        self.store.put_state(REPORTS_STATE, record)
        return record

    def _report_post(self, due: reporting.Due, now: float, state: incidents.IncidentState,
                     config: ReportsConfig, history: History) -> Post:
        assert self.daily_counters is not None  # noqa: S101 - checked by the caller
        if due.kind == "weekly":
            weekly = reporting.weekly_figures(history, self.daily_counters, due, now, state.open)
            return reporting.digest_post(weekly, due, now, self.settings)
        try:
            members = reporting.active_members(self.gateway.instance_activity())
        except (RetryableError, PermanentError) as exc:
            log.warning("instance activity not read, no cost per member: %s", exc)
            members = None
        monthly = reporting.monthly_figures(history, self.daily_counters, due, now, config,
                                            state.open, members)
        chart: Path | None = None
        if config.chart and self.reports_dir is not None:
            try:
                chart = render_chart(report.chart_data(monthly, self.settings),
                                     reporting.chart_file(self.reports_dir, due))
            except ChartError as exc:
                log.warning("report %s goes out without its chart: %s", due.key, exc)
        return reporting.report_post(monthly, due, now, self.settings, chart,
                                     self.gateway.limits().description_limit)

    def _hold_for_confirmation(self, posts: list[Post], events: Sequence[Event], now: float,
                               notes: list[str], delay: float,
                               ) -> tuple[list[Post], dict[str, Any] | None]:
        """In confirm mode, hold member posts of a new incident until an admin decides.

        The admin message of the opening says so; ``confirm`` publishes what is
        held, ``discard`` drops it and what follows; without an answer it is
        published after ``confirm_delay``. An incident resolved while still
        waiting is dropped whole (members never learn of a blip).
        """
        pending = self.store.get_state(CONFIRM_STATE) or {}
        changed = False
        kept: list[Post] = []
        for event in events:
            if event.kind is EventKind.OPENED and not event.incident.manual:
                pending = {"incident": event.incident.id, "deadline": now + delay,
                           "posts": [], "decided": None}
                changed = True
        for post in posts:
            waiting = (pending.get("incident") and post.key.startswith(f"{pending['incident']}:")
                       and post.kind in MEMBER_KINDS)
            if not waiting:
                kept.append(self._confirm_note(post, pending) if post.kind is PostKind.ADMIN
                            and pending.get("incident") and not pending.get("decided")
                            and post.key == f"{pending['incident']}:0:admin" else post)
            elif pending.get("decided") == "discard":
                notes.append(f"{post.key} not published: discarded by an admin")
            elif pending.get("decided") == "confirm":
                kept.append(post)
            else:
                pending = {**pending, "posts": [*pending["posts"], post_to_json(post)]}
                changed = True
        if pending.get("incident") and not pending.get("decided"):
            held = [post_from_json(p) for p in pending["posts"]]
            if any(p.kind is PostKind.RESOLUTION for p in held):
                notes.append(f"{pending['incident']} resolved before anyone confirmed it: "
                             f"nothing published")
                return kept, {**pending, "decided": "expired", "posts": []}
            if now >= float(pending["deadline"]):
                notes.append(f"{pending['incident']}: no answer in time, published")
                return [*kept, *held], {**pending, "decided": "confirm", "posts": []}
        return kept, pending if changed else None

    def _confirm_note(self, post: Post, pending: Mapping[str, Any]) -> Post:
        """Add to the opening's admin message that members are not told yet."""
        deadline = compose.local_time(float(pending["deadline"]), post.created_at, self.settings)
        extra = (f"\nMembers are not told yet: reply confirm to publish, discard to keep it "
                 f"quiet. Published at {deadline} otherwise.")
        return dataclasses.replace(post, text=post.text + extra)

    # --- hosts members do not hear about (issue 11) ---------------------------------------

    def _admin_only_posts(self, findings: Sequence[Finding], snapshot: Snapshot, now: float,
                          states: dict[str, dict[str, Any]], notes: list[str]) -> list[Post]:
        """Tell the admins about hosts that are not member-visible, through an incident of its own.

        Health mutes those hosts' findings (``health.ADMIN_ONLY_MUTE``), so the
        incident members follow never holds them. Here the same state machine
        (``incidents.step``, reminders off) runs over them unmuted, stored under
        ``ADMIN_ONLY_STATE``: one admin message when such a host stops
        reporting or gets into trouble, one per change (spaced like updates),
        one when it is over; never one per tick. Its state is committed with
        the tick's, so a restart repeats nothing.
        """
        data = self.store.get_state(ADMIN_ONLY_STATE)
        state = incidents.IncidentState()
        if data is not None:
            try:
                state = incidents.IncidentState.from_json(data)
            except ValueError as exc:
                log.error("stored admin-only incident state unreadable, starting afresh: %s",
                          exc)
        told = {a.component for a in state.open.affected} if state.open is not None else set()
        # Muted for another reason now (maintenance, Redis down): still muted, not "fine again".
        quiet = [dataclasses.replace(f, muted=None) if f.muted == health.ADMIN_ONLY_MUTE else f
                 for f in findings
                 if f.muted == health.ADMIN_ONLY_MUTE or (f.muted and f.component in told)]
        if not quiet and state.open is None:
            return []
        state, events = incidents.step(state, quiet, now,
                                       dataclasses.replace(self.policy, max_reminders=0))
        states[ADMIN_ONLY_STATE] = state.to_json()
        posts: list[Post] = []
        for event in events:
            log.info("admins only: %s %s: %s", event.incident.id, event.kind.value, event.reason)
            notes.append(f"admins only: {event.reason}")
            post = compose.admin_only_event(event, snapshot, self.settings)
            if post is not None:
                posts.append(post)
        return posts

    def _no_sidekiq_notice(self, findings: Sequence[Finding], snapshot: Snapshot, now: float,
                           states: dict[str, dict[str, Any]]) -> Post | None:
        """Tell the admins once when the Redis read holds no trace of Sidekiq.

        Health mutes "no live process" then (a wrong URL, database or namespace
        is a configuration mistake, not an outage to announce), so without this
        nobody would hear of it. Told again only after Sidekiq was seen meanwhile.
        """
        absent = any(f.muted == health.NO_SIDEKIQ_MUTE for f in findings)
        told = (self.store.get_state(NO_SIDEKIQ_STATE) or {}).get("since")
        if not absent:
            if told is not None:
                states[NO_SIDEKIQ_STATE] = {}
            return None
        if told is not None:
            return None
        states[NO_SIDEKIQ_STATE] = {"since": now}
        redis = snapshot.redis
        where = redis.url + (f" namespace {redis.namespace}" if redis.namespace else "")
        return compose.no_sidekiq_notice(where, now, now, self.settings)

    def _status_due(self, snapshot: Snapshot, state: incidents.IncidentState,
                    now: float) -> bool:
        """Return True when the periodic all-is-well post is due.

        Due when no incident is open, Sidekiq was read, and no status post was
        stored within ``status_every``. A status post a standby saw due counts
        as posted (``LEFT_TO_LEADER_STATE``): the leader posted it.
        """
        if self.status_every <= 0 or state.open is not None or snapshot.sidekiq is None:
            return False
        last = self.store.last_created(PostKind.STATUS)
        left = self.store.get_state(LEFT_TO_LEADER_STATE) or {}
        seen = left.get("status")
        if (isinstance(seen, (int, float)) and not isinstance(seen, bool) and math.isfinite(seen)
                and (last is None or seen > last)):
            last = float(seen)
        return last is None or now - last >= self.status_every

    def _status_post(self, snapshot: Snapshot, state: incidents.IncidentState,
                     now: float) -> Post | None:
        """Return the periodic all-is-well post when one is due (``_status_due``), else None.

        The post's key names its day, so a restart never posts it twice.
        """
        if not self._status_due(snapshot, state, now):
            return None
        return compose.compose_status(snapshot, now, self.settings)

    def _update_profile(self, state: incidents.IncidentState, now: float) -> str | None:
        """Keep the profile's Status field current: one API call per change, not per tick.

        A failed update is retried on the outbox's backoff (``backoff_delay``
        with its base and cap), not on every tick while the instance fails.
        """
        open_incident = state.open
        signature = "ok" if open_incident is None else (
            f"{open_incident.id}:{open_incident.severity.name}:"
            f"{','.join(a.component for a in open_incident.affected)}")
        stored = self.store.get_state(PROFILE_STATE) or {}
        if stored.get("signature") == signature:
            return None
        at = self.clock()
        if at < self._profile_retry_at:
            return None  # backing off while the instance fails, like the outbox
        name, value = compose.profile_field(open_incident, now, self.settings)
        try:
            self.gateway.set_profile_field(name, value)
        except (RetryableError, PermanentError) as exc:
            self._profile_failures += 1
            delay = backoff_delay(self._profile_failures, self.outbox.backoff_base,
                                  self.outbox.backoff_cap)
            self._profile_retry_at = at + delay
            log.log(logging.WARNING if self._profile_failures == 1 else logging.DEBUG,
                    "profile field not updated (next try in %.0f s): %s", delay, exc)
            return None
        self._profile_failures = 0
        self._profile_retry_at = 0.0
        self.store.put_state(PROFILE_STATE, {"signature": signature, "value": value})
        return value

    # --- the loop -----------------------------------------------------------------

    def run(self, interval: float, stop: threading.Event,
            on_tick: Callable[[TickReport], None] | None = None,
            max_ticks: int | None = None) -> int:
        """Tick every ``interval`` seconds until ``stop`` is set; return how many ticks ran.

        An exception in a tick is logged once with its traceback (not every
        tick while it repeats) and the loop goes on. When stopped, one last
        delivery pass flushes what can be sent. A ``KeyboardInterrupt`` (a
        second SIGINT or SIGTERM, see ``stop_on_signals``) ends the tick, the
        wait or the final delivery where it is, and the loop returns at once.
        """
        ticks = 0
        pacer = GcPacer()
        try:
            while not stop.is_set():
                started = time.monotonic()
                if pacer.due(started):
                    release_memory()
                try:
                    report = self.tick()
                except Exception as exc:
                    self._tick_failed(exc)
                else:
                    self._beat()
                    if self._last_error is not None:
                        log.warning("ticks work again (last error: %s)", self._last_error)
                        self._last_error = None
                    if on_tick is not None:
                        on_tick(report)
                ticks += 1
                if max_ticks is not None and ticks >= max_ticks:
                    break
                remaining = max(0.0, interval - (time.monotonic() - started))
                if not self.leading:
                    # A standby asks again as soon as the leader's lease can have expired.
                    retry = self._lease_retry_in
                    stop.wait(remaining if retry is None else min(remaining, retry + 0.01))
                    continue
                if self.intake is None and self.setup_commands is not None:
                    self._try_setup()
                if self.intake is not None:
                    self._serve_mentions(remaining, stop)
                else:
                    stop.wait(remaining)
            if self.leading:
                self.flush()
            if self.election is not None:
                self.election.release()
        except KeyboardInterrupt:  # a second signal (stop_on_signals): leave at once
            log.warning("interrupted: stopping without finishing the tick or the final "
                        "delivery (the next start repeats what was not committed)")
            stop.set()
        if self.intake is not None:
            self.intake.close()
        self._close_page()
        return ticks

    def _try_setup(self) -> None:
        """Start the mention intake; when the instance cannot be asked yet, retry later.

        Health watching never waits for it: the bot must report an instance
        that is down, so commands come up whenever the instance lets them.
        """
        now = time.monotonic()
        if self.setup_commands is None or now < self._setup_due:
            return
        self._setup_due = now + _SETUP_RETRY
        try:
            self.intake = self.setup_commands()
        except Exception as exc:
            self._tick_failed(exc)

    def _serve_mentions(self, seconds: float, stop: threading.Event) -> None:
        """Answer mentions until the next tick is due; delivering replies as they come."""
        assert self.intake is not None  # noqa: S101 - checked by the caller

        def deliver(report: object) -> None:
            del report
            self.outbox.deliver(self.clock())

        try:
            self.intake.serve(seconds, stop, on_drain=deliver)
        except Exception as exc:
            self._tick_failed(exc)
            stop.wait(seconds)

    def _beat(self, at: float | None = None) -> None:
        """Record that a tick completed (``statusbot healthcheck`` reads it).

        ``at`` rewrites the last completed tick's time with a new problem.
        """
        if self.heartbeat is None:
            return
        if at is None:
            at = self._last_beat = self.clock()
        try:
            write_heartbeat(self.heartbeat, at, self.state_problem, self.role)
        except OSError as exc:
            log.warning("cannot write the heartbeat file %s: %s", self.heartbeat, exc)

    def _tick_failed(self, exc: Exception) -> None:
        damage = damage_of(exc)
        if damage is not None and self.state_problem is None:
            # Nothing can be queued in a damaged file: healthcheck is the voice left.
            self.state_problem = (f"state file {self.store.path} is damaged ({damage}); stop "
                                  f"the bot and move it aside to start afresh")
            log.error("%s", self.state_problem)
            self._beat(self._last_beat)
        signature = f"{type(exc).__name__}: {exc}"
        if signature != self._last_error:
            log.error("tick failed (logged once while it repeats): %s", signature,
                      exc_info=exc)
            self._last_error = signature
        else:
            log.debug("tick failed again: %s", signature)

    def flush(self) -> DeliveryReport | None:
        """Deliver what is due once more (at shutdown), the fallbacks' too; never raises."""
        if self.fallbacks is not None:
            self.fallbacks.flush()
        try:
            return self.outbox.deliver(self.clock())
        except Exception as exc:
            log.error("final delivery failed: %s", exc)
            return None


def write_heartbeat(path: Path, at: float, problem: str | None = None,
                    role: str | None = None) -> None:
    """Write ``at`` (epoch seconds) to ``path`` atomically; ``problem`` on a second line.

    A problem makes ``statusbot healthcheck`` fail although ticks complete
    (the state file was lost while running, for instance). ``role``
    (``leader`` or ``standby``, with ``[bot] standby``) is the third line; a
    standby's completed ticks are as healthy as a leader's.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    extra = " ".join(problem.split()) + "\n" if problem else ""
    if role:
        extra = (extra or "\n") + " ".join(role.split()) + "\n"
    partial.write_text(f"{at:.3f}\n{extra}", encoding="utf-8")
    os.replace(partial, path)


def heartbeat_age(path: Path, now: float) -> float | None:
    """Return seconds since the last completed tick, or None when there is no heartbeat."""
    try:
        return now - float(path.read_text(encoding="utf-8").split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def heartbeat_problem(path: Path) -> str | None:
    """Return the problem the running bot wrote with its heartbeat, or None."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return None
    return lines[1].strip() or None if len(lines) > 1 else None


def heartbeat_role(path: Path) -> str | None:
    """Return the role the running bot wrote with its heartbeat (leader, standby), or None."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return None
    return lines[2].strip() or None if len(lines) > 2 else None


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT while inside the block (main thread only).

    The first signal lets the current tick finish; a second one raises
    ``KeyboardInterrupt`` where the main thread is (``Bot.run`` then returns at
    once), so that a stuck or long tick never holds up a shutdown.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s received again: interrupting", name)
            raise KeyboardInterrupt(name)
        log.info("%s received: finishing the current tick (send it again to interrupt)", name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
