"""Posts in member language: lengths, jargon, threads, admin messages, catch-up, profile field."""

from __future__ import annotations

import dataclasses
import re

import pytest

from bot import compose, defaults
from bot.compose import (
    MEMBER_KINDS,
    Settings,
    catchup,
    compose_event,
    compose_status,
    mastodon_length,
    profile_field,
)
from bot.incidents import IncidentState, Policy, step
from bot.model import (
    Affected,
    Event,
    EventKind,
    Finding,
    HostStats,
    Incident,
    Post,
    PostKind,
    QueueStats,
    RedisStats,
    Severity,
    SidekiqStats,
    Snapshot,
)
from bot.wording import DEFAULT_WORDING, Impact, Wording

T = 1_700_000_000.0
"""2023-11-14 22:13:20 UTC, 23:13:20 in Berlin."""
OK, W, C = Severity.OK, Severity.WARNING, Severity.CRITICAL

JARGON = re.compile(
    r"\b(sidekiq|redis|queues?|latency|rss|swap|default|push|ingress|pull|mailers|scheduler|"
    r"fasp|unserved|jobs?|workers?|process|processes|heartbeats?|enqueued|backlog|"
    r"warning|critical|inc-\d+)\b",
    re.IGNORECASE)
"""Words members should never have to read."""

ADMINS = ("alice", "bob@other.example")


def jargon(text: str) -> list[str]:
    return JARGON.findall(text)


def finding(component: str, severity: Severity = W, reason: str = "rule fired",
            value: float | None = None, since: float | None = None,
            muted: str | None = None, eta: float | None = None) -> Finding:
    return Finding(component, severity, reason, value=value, since=since, muted=muted,
                   eta_s=eta)


def timeline() -> list[Event]:
    """Events of every kind, from the state machine itself."""
    ticks: list[tuple[float, list[Finding]]] = [
        (T, [finding("queue:push", W, "latency 400 s ≥ 300 s for 2 min", 400.0, since=T - 300),
             finding("queue:mailers", W, "latency 320 s ≥ 300 s", 320.0)]),
        (T + 60, [finding("queue:push", C, "latency 1900 s ≥ 1800 s", 1900.0),
                  finding("queue:mailers", W, "latency 330 s ≥ 300 s", 330.0)]),
        (T + 120, [finding("queue:push", C, "latency 1900 s ≥ 1800 s", 1900.0),
                   finding("queue:mailers", W, "latency 330 s", 330.0),
                   finding("memory", W, "8% available ≤ 10%", 8.0),
                   finding("unserved:scheduler", W, "no live process serves scheduler"),
                   finding("fasp", W, "unknown component"),
                   finding("queue:custom", W, "latency 700 s", 700.0),
                   finding("dead", W, "60 jobs died in the last hour", 60.0),
                   finding("web", C, "/health: 502"), finding("streaming", W, "timeout"),
                   finding("swap", W, "60% used", 60.0)]),
        (T + 600, [finding("queue:push", W, "latency 900 s", 900.0, eta=1250.0),
                   finding("memory", W, "8% available", 8.0)]),
        (T + 900, [finding("queue:push", W, "latency 700 s", 700.0, eta=1000.0)]),
        (T + 900 + 7200, [finding("queue:push", W, "latency 650 s", 650.0, eta=3000.0)]),
        (T + 9000, [finding("redis", C, "unreachable: Connection refused"),
                    finding("queue:push", W, "x", muted="redis unreachable")]),
        (T + 9600, []),
    ]
    state = IncidentState()
    events: list[Event] = []
    for now, findings in ticks:
        state, new = step(state, findings, now, Policy())
        events += new
    return events


EVENTS = timeline()
KINDS = [e.kind for e in EVENTS]


def the(kind: EventKind) -> Event:
    return EVENTS[KINDS.index(kind)]


def snapshot(*, redis_up: bool = True, host: bool = True) -> Snapshot:
    queues = (QueueStats("push", 4210, 1500.0, False, True),
              QueueStats("default", 812, 12.0, False, True),
              QueueStats("mailers", 0, 0.0, False, True),
              QueueStats("pull", 3, 2.0, True, False),
              QueueStats("ingress", 0, 0.0, False, True))
    sidekiq = SidekiqStats(
        processed=1_000_000, failed=10, processed_today=12345, failed_today=3, scheduled=4,
        retries=12, dead=3, enqueued=5025, queues=queues, processes=(),
        processes_registered=3, live_processes=2, stale_processes=1, busy=25, concurrency=25,
        utilisation=1.0, anomaly_count=0, anomalies=())
    host_stats = HostStats(
        hostname="mastodon", memory_total_bytes=16 << 30, memory_available_bytes=1 << 30,
        memory_percent=93.4, swap_total_bytes=2 << 30, swap_used_bytes=int(1.6 * (1 << 30)),
        swap_percent=80.0, load_1m=1.0, load_5m=1.0, load_15m=1.0, cpu_count=4,
        cpu_percent=50.0, disks=(), roles=())
    if not redis_up:
        return Snapshot(T, RedisStats("redis://127.0.0.1:6379/0", "", False,
                                      error="ConnectionError: Connection refused"),
                        None, None, host_error="PermissionError: denied")
    return Snapshot(T, RedisStats("redis://127.0.0.1:6379/0", "", True, rtt_ms=1.234),
                    sidekiq, host_stats if host else None)


SNAPSHOT = snapshot()

SETTINGS = [
    pytest.param(Settings(), id="defaults"),
    pytest.param(Settings(instance="example.social", admin_accts=ADMINS,
                          timezone="Europe/Berlin"), id="berlin-with-admins"),
    pytest.param(Settings(max_characters=100, admin_accts=ADMINS), id="tiny-100"),
    pytest.param(Settings(max_characters=60, admin_accts=("a",)), id="tinier-60"),
    pytest.param(Settings(instance="https://a-very-long-instance-name.example/" + "x" * 80,
                          max_characters=120, admin_accts=ADMINS, language="de",
                          member_visibility="unlisted"), id="url-instance-120"),
    pytest.param(Settings(instance="the-instance-with-a-name-longer-than-anything-sane" * 3,
                          max_characters=150, admin_accts=ADMINS), id="long-instance-150"),
]


def test_timeline_has_every_kind() -> None:
    """The fixture covers every kind ``step`` raises (admins' notes: see the manual tests)."""
    assert set(KINDS) == set(EventKind) - {EventKind.NOTE}


def length(post: Post) -> int:
    return mastodon_length(post.spoiler_text) + mastodon_length(post.text)


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("event", EVENTS, ids=[k.value for k in KINDS])
def test_every_post_fits_and_carries_the_settings(event: Event, settings: Settings) -> None:
    """Every post fits max_characters (CW included), has the language, time and visibility."""
    for post in compose_event(event, SNAPSHOT, settings):
        assert length(post) <= settings.max_characters, post
        assert (post.language, post.created_at) == (settings.language, event.at)
        expected = "direct" if post.kind is PostKind.ADMIN else settings.member_visibility
        assert post.visibility == expected
        assert post.text.strip()


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("event", EVENTS, ids=[k.value for k in KINDS])
def test_member_posts_have_no_jargon(event: Event, settings: Settings) -> None:
    """Member posts speak of impact, never of internals."""
    for post in compose_event(event, SNAPSHOT, settings):
        if post.kind is not PostKind.ADMIN:
            assert jargon(post.spoiler_text + "\n" + post.text) == [], post.text


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param(EventKind.OPENED,
                     (PostKind.NOTICE, "inc-1699999700:0", None, True, None), id="notice"),
        pytest.param(EventKind.WORSENED,
                     (PostKind.UPDATE, "inc-1699999700:1", "inc-1699999700:0", False, None),
                     id="worsened"),
        pytest.param(EventKind.COMPONENT_ADDED,
                     (PostKind.UPDATE, "inc-1699999700:2", "inc-1699999700:0", False, None),
                     id="added"),
        pytest.param(EventKind.IMPROVED,
                     (PostKind.UPDATE, "inc-1699999700:3", "inc-1699999700:0", False, None),
                     id="improved"),
        pytest.param(EventKind.COMPONENT_CLEARED,
                     (PostKind.UPDATE, "inc-1699999700:4", "inc-1699999700:0", False, None),
                     id="cleared"),
        pytest.param(EventKind.REMINDER,
                     (PostKind.UPDATE, "inc-1699999700:5", "inc-1699999700:0", False, None),
                     id="reminder"),
        pytest.param(EventKind.RESOLVED,
                     (PostKind.RESOLUTION, "inc-1699999700:7", "inc-1699999700:0", False,
                      "inc-1699999700:0"), id="resolution"),
    ],
)
def test_thread_keys_pins(kind: EventKind, expected: tuple[object, ...]) -> None:
    """The notice is pinned; every later post replies to it; the resolution unpins it."""
    member, admin = compose_event(the(kind), SNAPSHOT, Settings(admin_accts=ADMINS))
    assert (member.kind, member.key, member.parent_key, member.pin, member.unpin_key) == expected
    assert (admin.kind, admin.key, admin.parent_key, admin.pin, admin.unpin_key) == (
        PostKind.ADMIN, f"{member.key}:admin", None, False, None)


def test_composing_again_gives_the_same_posts() -> None:
    """Composition is deterministic, so a recomposed post keeps its idempotency key."""
    settings = Settings(admin_accts=ADMINS)
    assert [compose_event(e, SNAPSHOT, settings) for e in EVENTS] == [
        compose_event(e, SNAPSHOT, settings) for e in EVENTS]


BERLIN = Settings(instance="example.social", timezone="Europe/Berlin")


@pytest.mark.parametrize(
    ("kind", "cw", "text"),
    [
        pytest.param(EventKind.OPENED, "Service notice: some delays",
                     "Since 23:08 CET, parts of example.social are slower than usual.\n"
                     "Your posts reach people on other servers late.\n"
                     "Emails (sign-up confirmations, password resets) are delayed.\n"
                     "We will post updates in this thread.", id="notice"),
        pytest.param(EventKind.WORSENED, "Service update",
                     "Update: the problem has got worse.\n"
                     "Your posts reach people on other servers late.\n"
                     "Emails (sign-up confirmations, password resets) are delayed.",
                     id="worsened"),
        pytest.param(EventKind.IMPROVED, "Service update",
                     "Update: things are getting better.\n"
                     "Back to normal: the website and apps; scheduled posts and routine "
                     "clean-up; emails (sign-up confirmations, password resets); some "
                     "background tasks; live updates in apps; background tasks that kept "
                     "failing; part of the service.\n"
                     "The server is short on memory; pages may be slow or fail.\n"
                     "Your posts reach people on other servers late. "
                     "Expected to catch up in about 20 min.",
                     id="improved-with-estimate"),
        pytest.param(EventKind.COMPONENT_CLEARED, "Service update",
                     "Update: part of it is back to normal.\n"
                     "Back to normal: the server's memory.\n"
                     "Your posts reach people on other servers late. "
                     "Expected to catch up in about 15 min.", id="cleared"),
        pytest.param(EventKind.REMINDER, "Service notice: still ongoing",
                     "Still ongoing since yesterday 23:08 CET. We have not forgotten it.\n"
                     "Your posts reach people on other servers late. "
                     "Expected to catch up in about 50 min.", id="reminder"),
        pytest.param(EventKind.RESOLVED, "Service notice: resolved",
                     "Resolved after 2 h 45 min: example.social works normally again.\n"
                     "What was affected: background work; the website and apps; the server's "
                     "memory; scheduled posts and routine clean-up; "
                     "delivery of your posts to other servers; emails (sign-up "
                     "confirmations, password resets); some background tasks; live updates "
                     "in apps; background tasks that kept failing; part of the service.\n"
                     "At worst, things ran about 30 min late.\n"
                     "Thank you for your patience.", id="resolution"),
    ],
)
def test_member_texts(kind: EventKind, cw: str, text: str) -> None:
    """The member texts as a member reads them."""
    (post,) = compose_event(the(kind), SNAPSHOT, BERLIN)
    assert (post.spoiler_text, post.text) == (cw, text)


def test_unserved_noun_reads_as_a_noun() -> None:
    """Nothing-is-processing wording names what waits, in member words."""
    impact = DEFAULT_WORDING.impact("unserved:push")
    assert impact == Impact("Nothing is processing delivery of your posts to other servers "
                            "right now.", "delivery of your posts to other servers",
                            "On hold: delivery of your posts to other servers")


@pytest.mark.parametrize(
    ("component", "sentence"),
    [
        pytest.param("unserved:mailers", "Nothing is processing emails (sign-up confirmations, "
                     "password resets) right now.", id="named-queue"),
        pytest.param("unserved:custom", "Nothing is processing some background tasks right now.",
                     id="queue-without-own-words"),
        pytest.param("unserved:*", "Background work has stopped; new posts, notifications and "
                     "emails wait until it runs again.", id="no-process-at-all"),
        pytest.param("gpu", "Part of the service is not working normally.",
                     id="unknown-component"),
    ],
)
def test_impact_sentences(component: str, sentence: str) -> None:
    """Every component, even one the wording does not list, has a member sentence."""
    assert DEFAULT_WORDING.impact(component).sentence == sentence


def test_component_added_lists_every_impact_once() -> None:
    """Memory and swap share one sentence; every other component has its own."""
    settings = dataclasses.replace(BERLIN, max_characters=2000)
    (post,) = compose_event(the(EventKind.COMPONENT_ADDED), SNAPSHOT, settings)
    assert post.text.splitlines() == [
        "Update: something else is affected now.",
        "The website and apps may not load.",
        "Your posts reach people on other servers late.",
        "The server is short on memory; pages may be slow or fail.",
        "Nothing is processing scheduled posts and routine clean-up right now.",
        "Emails (sign-up confirmations, password resets) are delayed.",
        "Some background tasks are delayed.",
        "Live updates in apps may be delayed; refresh to see new posts.",
        "Some background tasks keep failing; a few actions may not have gone through.",
        "Part of the service is not working normally.",
    ]


@pytest.mark.parametrize(
    ("max_characters", "text"),
    [
        pytest.param(100, "Since 22:08 UTC, parts of this server are slower than usual.\n"
                          "Your posts…", id="100"),
        pytest.param(160, "Since 22:08 UTC, parts of this server are slower than usual.\n"
                          "Your posts reach people on other servers late.\n"
                          "Emails (sign-up…", id="160"),
        pytest.param(220, "Since 22:08 UTC, parts of this server are slower than usual.\n"
                          "Your posts reach people on other servers late.\n"
                          "Emails (sign-up confirmations, password resets) are delayed.",
                     id="footer-dropped-first"),
    ],
)
def test_notice_is_shortened_gracefully(max_characters: int, text: str) -> None:
    """The closing line goes first, then the text is cut at a word with an ellipsis."""
    (post,) = compose_event(the(EventKind.OPENED), None, Settings(max_characters=max_characters))
    assert (post.text, length(post) <= max_characters) == (text, True)


def test_admin_message_carries_the_numbers() -> None:
    """Admins get a direct message with mentions, reasons and the readings."""
    settings = Settings(instance="example.social", admin_accts=ADMINS, max_characters=1000)
    _, admin = compose_event(the(EventKind.WORSENED), SNAPSHOT, settings)
    assert admin.visibility == "direct"
    assert admin.text.splitlines() == [
        "@alice @bob@other.example example.social: incident inc-1699999700 worsened, "
        "critical (peak critical).",
        "Why: worsened: queue:push warning→critical",
        "queue:push critical since 22:08: latency 1900 s ≥ 1800 s",
        "queue:mailers warning since 22:13: latency 330 s ≥ 300 s",
        "Redis: reachable, 1.2 ms",
        "Memory: 6% available (1.0 GiB of 16.0 GiB); swap 1.6 GiB of 2.0 GiB used (80%)",
        "Sidekiq: 2 live, 1 stale processes; busy 25/25; enqueued 5,025; retries 12; dead 3",
        "Queues: push 4,210 (25 min), default 812 (12 s), pull 3 (2 s) paused unserved, "
        "mailers 0 (0 s)",
    ]


@pytest.mark.parametrize(
    ("kind", "lines"),
    [
        pytest.param(EventKind.REMINDER, [
            "@alice example.social: incident inc-1699999700 reminder, warning (peak critical).",
            "Why: reminder 1 of 3: nothing announced for 2 h",
            "Acknowledge the incident to stop the reminders.",
            "queue:push warning since yesterday 22:08: latency 650 s (peak value 1,900; "
            "peak critical; "
            "catches up in ~50 min)",
        ], id="reminder"),
        pytest.param(EventKind.RESOLVED, [
            "@alice example.social: incident inc-1699999700 resolved after 2 h 45 min "
            "(peak critical).",
            "Why: resolved: every component is fine after 2 h 45 min",
            "11 components affected; 1 more not listed below.",
            "redis was critical from 00:43: unreachable: Connection refused",
            "web was critical from yesterday 22:15: /health: 502",
            "memory was warning from yesterday 22:15: 8% available",
            "swap was warning from yesterday 22:15: 60% used",
            "unserved:scheduler was warning from yesterday 22:15: no live process serves "
            "scheduler",
            "queue:push was critical from yesterday 22:08: latency 650 s (peak value 1,900)",
            "queue:mailers was warning from yesterday 22:13: latency 330 s",
            "queue:custom was warning from yesterday 22:15: latency 700 s",
            "streaming was warning from yesterday 22:15: timeout",
            "dead was warning from yesterday 22:15: 60 jobs died in the last hour",
        ], id="resolution-lists-ten"),
    ],
)
def test_admin_texts_without_snapshot(kind: EventKind, lines: list[str]) -> None:
    """Without a reading, admins still get the reasons, values and peaks."""
    settings = Settings(instance="example.social", admin_accts=("alice",), max_characters=5000)
    _, admin = compose_event(the(kind), None, settings)
    assert admin.text.splitlines() == lines


def test_admin_message_when_redis_is_down() -> None:
    """An unreachable Redis and an unread host are said plainly."""
    settings = Settings(admin_accts=("alice",), max_characters=5000)
    _, admin = compose_event(the(EventKind.COMPONENT_ADDED), snapshot(redis_up=False), settings)
    assert admin.text.splitlines()[-2:] == [
        "Redis: unreachable (ConnectionError: Connection refused)",
        "Host: not read (PermissionError: denied)",
    ]


def test_no_admin_message_without_admins() -> None:
    """Nobody to tell: only the member post."""
    assert [p.kind for p in compose_event(the(EventKind.OPENED), SNAPSHOT, Settings())] == [
        PostKind.NOTICE]


@pytest.mark.parametrize("max_characters", [60, 100, 500])
def test_admin_mentions_are_never_cut(max_characters: int) -> None:
    """However short the limit, the admin message starts with every mention."""
    settings = Settings(admin_accts=("alice", "@bob@a-rather-long-domain-name.example"),
                        max_characters=max_characters)
    _, admin = compose_event(the(EventKind.RESOLVED), SNAPSHOT, settings)
    assert admin.text.startswith("@alice @bob@a-rather-long-domain-name.example ")
    assert mastodon_length(admin.text) <= max_characters


@pytest.mark.parametrize(
    ("text", "count"),
    [
        pytest.param("hello", 5, id="plain"),
        pytest.param("see https://example.social/a/very/long/path?with=query", 27, id="url-23"),
        pytest.param("see https://x.io.", 28, id="url-trailing-dot-counts"),
        pytest.param("@alice hi", 9, id="local-mention"),
        pytest.param("@bob@other.example hi", 7, id="remote-mention-counts-username"),
        pytest.param("mail bob@other.example", 22, id="email-is-not-a-mention"),
        pytest.param("⚠️ ok", 4, id="emoji-with-variation-selector"),
        pytest.param("👩🏽 ok", 4, id="skin-tone"),
        pytest.param("e\u0301", 1, id="combining-accent"),
        pytest.param("", 0, id="empty"),
    ],
)
def test_mastodon_length(text: str, count: int) -> None:
    """Characters are counted as Mastodon counts them (never fewer)."""
    assert mastodon_length(text) == count


def test_url_length_follows_the_instance() -> None:
    """An instance that reserves another length per URL is honoured."""
    assert mastodon_length("https://example.social/x", url_length=30) == 30


@pytest.mark.parametrize(
    ("timezone", "opened_at", "now", "value"),
    [
        pytest.param("UTC", T, T + 60, "⚠️ Posts to other servers delayed · since 22:13 UTC",
                     id="utc"),
        pytest.param("Europe/Berlin", T, T + 60,
                     "⚠️ Posts to other servers delayed · since 23:13 CET", id="berlin-winter"),
        pytest.param("Europe/Berlin", T - 150 * 86400, T - 150 * 86400 + 60,
                     "⚠️ Posts to other servers delayed · since 00:13 CEST",
                     id="berlin-summer"),
        pytest.param("America/Sao_Paulo", T, T + 60,
                     "⚠️ Posts to other servers delayed · since 19:13 UTC-03",
                     id="numeric-zone"),
        pytest.param("Europe/Berlin", T, T + 3600,
                     "⚠️ Posts to other servers delayed · since yesterday 23:13 CET",
                     id="yesterday"),
        pytest.param("UTC", T, T + 3 * 86400,
                     "⚠️ Posts to other servers delayed · since 14 Nov 22:13 UTC",
                     id="other-day"),
        pytest.param("No/Such_Zone", T, T + 60,
                     "⚠️ Posts to other servers delayed · since 22:13 UTC",
                     id="unknown-zone-falls-back-to-utc"),
    ],
)
def test_profile_field_times(timezone: str, opened_at: float, now: float, value: str) -> None:
    """Times are local to the configured zone, with the day when it is not today."""
    incident = Incident("inc-1", opened_at, (Affected("queue:push", W, opened_at, W, "r"),))
    assert profile_field(incident, now, Settings(timezone=timezone)) == ("Status", value)


def _incident(*components: str) -> Incident:
    return Incident("inc-1", T, tuple(Affected(c, C if c == "redis" else W, T, W, "r")
                                      for c in components))


@pytest.mark.parametrize(
    ("incident", "value"),
    [
        pytest.param(None, "✅ All normal · 22:30 UTC", id="all-normal"),
        pytest.param(_incident("queue:mailers"), "⚠️ Emails delayed · since 22:13 UTC",
                     id="one"),
        pytest.param(_incident("queue:mailers", "redis", "memory", "swap"),
                     "⚠️ Background work stopped (+2 more) · since 22:13 UTC",
                     id="worst-first-memory-and-swap-once"),
        pytest.param(_incident("unserved:ingress"),
                     "⚠️ On hold: posts arriving from other servers · since 22:13 UTC",
                     id="unserved"),
        pytest.param(Incident("inc-1", T, ()), "⚠️ Some features affected · since 22:13 UTC",
                     id="nothing-affected"),
    ],
)
def test_profile_field(incident: Incident | None, value: str) -> None:
    """The profile field says the state at a glance."""
    assert profile_field(incident, T + 1000, Settings()) == ("Status", value)


def test_profile_field_stays_within_255() -> None:
    """Whatever the wording, a profile field value stays within Mastodon's 255 characters."""
    wording = dataclasses.replace(DEFAULT_WORDING, profile_trouble="⚠️ {summary} " * 30,
                                  profile_name="N" * 300)
    name, value = profile_field(_incident("web"), T, Settings(wording=wording))
    assert (len(name), len(value), value.endswith("…")) == (255, 255, True)


def test_status_post() -> None:
    """The all-is-well post: one line, then a few numbers, in member words."""
    post = compose_status(SNAPSHOT, T, Settings(instance="example.social",
                                                timezone="Europe/Berlin"))
    assert post == Post(
        key="status:2023-11-14", kind=PostKind.STATUS,
        text="✅ All normal on example.social.\n"
             "12,345 background tasks done today · longest wait 25 min · memory 93% in use",
        visibility="unlisted", created_at=T, language="en")
    assert jargon(post.text) == []


@pytest.mark.parametrize(
    ("snap", "text"),
    [
        pytest.param(snapshot(host=False), "✅ All normal on this server.\n"
                     "12,345 background tasks done today · longest wait 25 min",
                     id="no-host"),
        pytest.param(snapshot(redis_up=False), "✅ All normal on this server.", id="no-sidekiq"),
    ],
)
def test_status_post_without_readings(snap: Snapshot, text: str) -> None:
    """Numbers that were not read are left out."""
    assert compose_status(snap, T, Settings()).text == text


@pytest.mark.parametrize("max_characters", [40, 60, 100])
def test_status_post_fits(max_characters: int) -> None:
    """The all-is-well post fits a tiny limit too."""
    post = compose_status(SNAPSHOT, T, Settings(max_characters=max_characters))
    assert mastodon_length(post.text) <= max_characters


def _stale_posts(settings: Settings) -> list[Post]:
    settings = dataclasses.replace(settings, admin_accts=ADMINS)
    posts = [p for e in EVENTS for p in compose_event(e, SNAPSHOT, settings)]
    return [*posts, compose_status(SNAPSHOT, T + 5, settings)]


def test_catchup_folds_member_notices() -> None:
    """Stale member notices become one post: the story in order, the newest in full."""
    settings = Settings(max_characters=1000, timezone="Europe/Berlin")
    posts = [p for p in _stale_posts(settings) if p.kind is not PostKind.RESOLUTION]
    post = catchup(posts, T, T + 9000, settings)
    assert post == Post(
        key="catchup:1700000000-1700009000", kind=PostKind.CATCHUP,
        text="Between yesterday 23:13 CET and 01:43 CET, this account could not post. "
             "What happened:\n"
             "yesterday 23:13: Since 23:08 CET, parts of this server are slower than usual.\n"
             "yesterday 23:14: Update: the problem has got worse.\n"
             "yesterday 23:15: Update: something else is affected now.\n"
             "yesterday 23:23: Update: things are getting better.\n"
             "yesterday 23:28: Update: part of it is back to normal.\n"
             "01:28: Still ongoing since yesterday 23:08 CET. We have not forgotten it.\n"
             "01:43: Update: something else is affected now. Background work has stopped; "
             "posting and notifications are affected.",
        visibility="public", created_at=T + 9000, spoiler_text="Service notices: catch-up")


@pytest.mark.parametrize("settings", SETTINGS)
def test_catchup_fits_and_keeps_admin_texts_out(settings: Settings) -> None:
    """The catch-up fits, keeps the newest notice, and never shows an admin message."""
    post = catchup(_stale_posts(settings), T, T + 9600, settings)
    assert length(post) <= settings.max_characters
    assert jargon(post.text) == []
    assert "@" not in post.text
    assert (post.visibility, post.language) == (settings.member_visibility, settings.language)
    if settings.max_characters >= 500:
        assert "(5 earlier notices left out)" in post.text
        assert "Resolved after 2 h 45 min" in post.text


def test_catchup_with_nothing_to_fold() -> None:
    """With no member notice among the stale posts, it says so."""
    admin_only = [p for p in _stale_posts(Settings()) if p.kind not in MEMBER_KINDS]
    post = catchup(admin_only, T, T + 600, Settings())
    assert post.text == ("Between 22:13 UTC and 22:23 UTC, this account could not post. "
                         "What happened:\nNo notices were missed.")


def test_default_wording_is_complete() -> None:
    """Every template uses only the placeholders the composer fills in."""
    assert DEFAULT_WORDING.problems() == []


def test_wording_problems_are_named() -> None:
    """A template with an unknown placeholder is reported by name, before it is posted."""
    wording = dataclasses.replace(
        DEFAULT_WORDING, notice_footer="See {link}", reminder="Since {tme}",
        months=("Jan",), impacts={"memory": Impact("Low {x}", "memory", "Low")})
    assert wording.problems() == [
        "notice_footer: unknown placeholder {link} (this text takes none; "
        "write {{ and }} for braces)",
        "reminder: unknown placeholder {tme} (use {time})",
        "impacts['memory'].sentence: unknown placeholder {x} (this text takes none; "
        "write {{ and }} for braces)",
        "months: needs 12 names, got 1",
    ]


def test_unknown_placeholder_stays_visible_instead_of_crashing() -> None:
    """A broken template never breaks the tick: the placeholder is printed as written."""
    wording = dataclasses.replace(DEFAULT_WORDING, notice_footer="See {link} {0} {",
                                  update_worsened="Worse {instance.x}")
    settings = Settings(wording=wording)
    (notice,) = compose_event(the(EventKind.OPENED), None, settings)
    (update,) = compose_event(the(EventKind.WORSENED), None, settings)
    assert (notice.text.splitlines()[-1], update.text.splitlines()[0]) == (
        "See {link} {0} {", "Worse {instance.x}")


def _member_templates(wording: Wording) -> list[str]:
    texts = [getattr(wording, f.name) for f in dataclasses.fields(wording)
             if not f.name.startswith(("admin_", "unit_")) and f.name != "impacts"]
    texts = [t for t in texts if isinstance(t, str)]
    for impact in wording.impacts.values():
        texts += [impact.sentence, impact.noun, impact.short]
    return texts


def test_default_member_wording_has_no_jargon() -> None:
    """No member template of the shipped wording uses internal words."""
    found = {text: jargon(text) for text in _member_templates(DEFAULT_WORDING) if jargon(text)}
    assert found == {}


@pytest.mark.parametrize(
    "component",
    [f"queue:{q}" for q in defaults.MASTODON_QUEUES]
    + ["memory", "swap", "redis", "dead", "web", "streaming", "unserved:*"],
)
def test_every_known_component_has_its_own_words(component: str) -> None:
    """Known components never fall back to the generic wording."""
    impact = DEFAULT_WORDING.impact(component)
    assert impact not in (DEFAULT_WORDING.impacts["*"], DEFAULT_WORDING.impacts["queue:*"])
    assert len(impact.short) <= 40


def test_adapted_wording_is_used() -> None:
    """An admin's wording replaces the shipped one everywhere it appears."""
    wording = dataclasses.replace(DEFAULT_WORDING, notice_footer="Follow #status for news.",
                                  cw_notice_warning="Heads-up")
    (post,) = compose_event(the(EventKind.OPENED), None, Settings(wording=wording))
    assert (post.spoiler_text, post.text.splitlines()[-1]) == (
        "Heads-up", "Follow #status for news.")


@pytest.mark.parametrize(
    ("eta_s", "phrase"),
    [(30, "about 1 min"), (240, "about 4 min"), (1250, "about 20 min"), (3000, "about 50 min"),
     (5400, "about 1 h 30 min"), (4 * 3600 + 1000, "about 4 h")],
)
def test_catch_up_estimates_are_rounded(eta_s: float, phrase: str) -> None:
    """Estimates read like a person would say them."""
    incident = Incident("inc-1", T, (Affected("queue:push", W, T, W, "r", eta_s=eta_s),))
    (post,) = compose_event(Event(EventKind.OPENED, incident, T, "opened"), None, Settings())
    assert f"Expected to catch up in {phrase}." in post.text


@pytest.mark.parametrize(
    ("seconds", "phrase"),
    [(20, "less than a minute"), (4800, "1 h 20 min"), (7200, "2 h"), (90000, "1 d 1 h")],
)
def test_resolution_says_how_long_it_lasted(seconds: float, phrase: str) -> None:
    """The resolution says how long it lasted, in whole minutes."""
    incident = Incident("inc-1", T, (Affected("web", OK, T, C, "r"),), cleared=("web",),
                        severity=OK, peak=C, sequence=1, resolved_at=T + seconds)
    event = Event(EventKind.RESOLVED, incident, T + seconds, "resolved")
    (post,) = compose_event(event, None, Settings())
    assert post.text.splitlines()[0] == (
        f"Resolved after {phrase}: this server works normally again.")


def test_resolution_by_muting_does_not_claim_recovery() -> None:
    """When what is left is silenced, the thread ends without saying all is well."""
    state, _ = step(IncidentState(), [finding("web", C)], T, Policy())
    _, (event,) = step(state, [finding("web", C, muted="silenced by alice")], T + 600, Policy())
    (post,) = compose_event(event, None, Settings())
    assert (post.kind, post.spoiler_text, post.text, post.unpin_key) == (
        PostKind.RESOLUTION, "Service notice: closed",
        "The admins are taking care of this; there will be no further updates here.\n"
        "What was affected: the website and apps.\n"
        "Thank you for your patience.", f"{event.incident.id}:0")


def test_catchup_merges_an_unsent_catchup() -> None:
    """An earlier catch-up that was never sent gives its entries, not its own lead."""
    settings = Settings(max_characters=1000)
    stale = _stale_posts(settings)
    first = catchup(stale[:4], T, T + 65, settings)
    merged = catchup([first, *stale[4:8]], T, T + 900, settings)
    assert merged.text.splitlines() == [
        "Between 22:13 UTC and 22:28 UTC, this account could not post. What happened:",
        "22:13: Since 22:08 UTC, parts of this server are slower than usual.",
        "22:14: Update: the problem has got worse. Your posts reach people on other servers "
        "late. Emails (sign-up confirmations, password resets) are delayed.",
        "22:15: Update: something else is affected now.",
        "22:23: Update: things are getting better. Back to normal: the website and apps; "
        "scheduled posts and routine clean-up; emails (sign-up confirmations, password "
        "resets); some background tasks; live updates in apps; background tasks that kept "
        "failing; part of the service. The server is short on memory; pages may be slow or "
        "fail. Your posts reach people on other servers late. Expected to catch up in about "
        "20 min.",
    ]


def test_failure_notice_tells_admins_once_per_post() -> None:
    """A refused post gives one direct admin message keyed on it, within the limit."""
    settings = compose.Settings(instance="example.social", admin_accts=("alice",),
                                max_characters=200)
    refused = Post(key="inc-1:0", kind=PostKind.NOTICE, text="x" * 400, visibility="public",
                   created_at=1.0)
    notice = compose.failure_notice(refused, "HTTP 422: Validation failed", 5.0, settings)
    assert notice is not None
    assert (notice.key, notice.kind, notice.visibility) == ("inc-1:0:refused", PostKind.ADMIN,
                                                            "direct")
    assert notice.text.startswith("@alice example.social: the instance refused a post")
    assert "HTTP 422" in notice.text
    assert compose.mastodon_length(notice.text) <= 200
    admin = Post(key="a", kind=PostKind.ADMIN, text="t", visibility="direct", created_at=1.0)
    assert compose.failure_notice(admin, "e", 5.0, settings) is None
    assert compose.failure_notice(refused, "e", 5.0, compose.Settings()) is None


def test_admin_words_reach_members_in_the_thread() -> None:
    """A declared incident, an admin's update and resolution carry the admin's own words."""
    from bot.incidents import close, declare, note

    settings = compose.Settings(instance="example.social", admin_accts=("alice",))
    state, opened = declare(IncidentState(), "Media uploads fail; we are on it.", 1000.0)
    notice = compose.compose_event(opened, None, settings)[0]
    assert (notice.kind, notice.pin, notice.parent_key) == (PostKind.NOTICE, True, None)
    assert notice.text.startswith("Media uploads fail; we are on it.")
    state, update = note(state, "The disk is replaced.", 1100.0)
    reply = compose.compose_event(update, None, settings)[0]
    assert (reply.kind, reply.parent_key, reply.text) == (
        PostKind.UPDATE, notice.key, "The disk is replaced.")
    _, resolved = close(state, "Uploads work again.", 1200.0)
    resolution = compose.compose_event(resolved, None, settings)[0]
    assert resolution.unpin_key == notice.key
    assert "Uploads work again." in resolution.text
    assert resolution.text.splitlines()[0].startswith("Resolved after")


@pytest.mark.parametrize(
    ("seconds", "member", "admin"),
    [
        pytest.param(38, "less than a minute", "38 s", id="38s"),
        pytest.param(59.4, "less than a minute", "59 s", id="59s"),
        pytest.param(59.6, "1 min", "1 min", id="rounds-to-60s"),
        pytest.param(90, "1 min", "1 min", id="90s"),
        pytest.param(119, "1 min", "1 min", id="119s"),
        pytest.param(3599, "59 min", "59 min", id="59min59s"),
        pytest.param(3659, "1 h", "1 h", id="1h59s"),
        pytest.param(86400 + 3 * 3600 + 3540, "1 d 3 h", "1 d 3 h", id="1d3h59min"),
    ],
)
def test_member_and_admin_durations_agree(seconds: float, member: str, admin: str) -> None:
    """The resolution tells members and admins the same duration, rounded the same way."""
    incident = Incident("inc-1", T, (Affected("web", OK, T, C, "r"),), cleared=("web",),
                        severity=OK, peak=C, sequence=1, resolved_at=T + seconds)
    event = Event(EventKind.RESOLVED, incident, T + seconds, "resolved")
    posts = compose_event(event, None, Settings(admin_accts=("alice",)))
    assert (posts[0].text.splitlines()[0], posts[1].text.splitlines()[0]) == (
        f"Resolved after {member}: this server works normally again.",
        f"@alice this server: incident inc-1 resolved after {admin} (peak critical).")


HELP = ("push: 4,200 waiting, +120 a minute. One more process `bundle exec sidekiq -c 7 -q push` "
        "would cost about 420 MB (21 GB available) and catch up in about 25 min.")


@pytest.mark.parametrize(
    ("kind", "component", "advice", "shown"),
    [
        pytest.param(EventKind.OPENED, "queue:push", HELP, True, id="queue-opens"),
        pytest.param(EventKind.OPENED, "memory", HELP, False, id="not-a-queue"),
        pytest.param(EventKind.WORSENED, "queue:push", HELP, False, id="not-an-opening"),
        pytest.param(EventKind.OPENED, "queue:push", None, False, id="no-advice"),
    ],
)
def test_what_would_help_only_for_admins_when_a_queue_incident_opens(
        kind: EventKind, component: str, advice: str | None, shown: bool) -> None:
    """The advice is a paragraph of the admin message of an opening, never of a member post."""
    incident = Incident("inc-1", T, (Affected(component, W, T, W, "r"),))
    settings = Settings(admin_accts=ADMINS, max_characters=2000)
    member, admin = compose_event(Event(kind, incident, T, "why"), SNAPSHOT, settings, advice)
    assert "bundle exec" not in member.text and "What would help" not in member.text
    assert (f"What would help: {HELP}" in admin.text) is shown


@pytest.mark.parametrize("max_characters", [500, 2000])
def test_what_would_help_is_capped(max_characters: int) -> None:
    """A long advice is cut to its cap (and half the instance's limit); the message still fits."""
    incident = Incident("inc-1", T, (Affected("queue:push", W, T, W, "r"),))
    settings = Settings(admin_accts=ADMINS, max_characters=max_characters)
    _, admin = compose_event(Event(EventKind.OPENED, incident, T, "why"), SNAPSHOT, settings,
                             HELP * 20)
    (line,) = [x for x in admin.text.splitlines() if x.startswith("What would help")]
    assert len(line) <= min(compose.ADMIN_HELP_MAX, max_characters // 2)
    assert line.endswith("…")
    assert mastodon_length(admin.text) <= max_characters


# --- a long answer to a mention as a short thread ------------------------------------------


THREAD_NOW = 1_796_090_400.0


def _lines(count: int, width: int) -> str:
    return "\n".join(f"line {i}: " + "x" * width for i in range(count))


@pytest.mark.parametrize(
    ("text", "max_characters", "posts"),
    [
        pytest.param("one short line", 500, 1, id="short-one-post"),
        pytest.param(_lines(3, 100), 500, 1, id="fits-one-post"),
        pytest.param(_lines(6, 100), 500, 2, id="two-posts"),
        pytest.param(_lines(40, 100), 500, compose.REPLY_THREAD_MAX, id="cut-at-max"),
        pytest.param("y" * 5000, 500, 1, id="one-huge-line"),
        pytest.param("\n".join(["word " * 400] * 3), 500, 3, id="huge-lines-each-cut"),
        pytest.param("", 500, 1, id="empty"),
    ],
)
def test_reply_thread_splits_at_lines_within_the_limit(text: str, max_characters: int,
                                                       posts: int) -> None:
    """Each part mentions the sender, fits, threads under the one before, and says its place."""
    settings = Settings(max_characters=max_characters)
    thread = compose.reply_thread("reply:9", "alice", text, status_id="77",
                                  visibility="direct", now=THREAD_NOW, settings=settings)
    assert len(thread) == posts
    assert [p.key for p in thread] == ["reply:9"] + [f"reply:9:{i}" for i in range(2, posts + 1)]
    assert [p.parent_key for p in thread] == ["status:77"] + [p.key for p in thread[:-1]]
    for index, post in enumerate(thread, start=1):
        assert post.text.startswith("@alice ")
        assert compose.mastodon_length(post.text) <= max_characters
        assert (post.visibility, post.kind) == ("direct", PostKind.REPLY)
        if posts > 1:
            assert post.text.endswith(f" {index}/{posts}")
    if posts == 1:
        assert thread[0] == compose.reply("reply:9", "alice", text, status_id="77",
                                          visibility="direct", now=THREAD_NOW, settings=settings)
    said = "\n".join(p.text for p in thread)
    if "cut" not in text and posts < compose.REPLY_THREAD_MAX and len(text) < 1000:
        for line in text.splitlines():
            assert line in said
