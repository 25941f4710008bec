"""Text from Redis, the host or the API never forms a mention, hashtag or link, nor escapes."""

from __future__ import annotations

import io
import re

import pytest

from bot import cli, compose
from bot.compose import Settings, admin_details, compose_event
from bot.model import (
    Affected,
    DiskStats,
    Event,
    EventKind,
    HostStats,
    Incident,
    ProcessStats,
    QueueStats,
    RedisStats,
    RoleMemory,
    Severity,
    SidekiqStats,
    Snapshot,
)
from bot.wording import NAME_LIMIT, neutral

T = 1_796_090_400.0
W = Severity.WARNING

MENTION = re.compile(r"(?<![=/\w])@\w")
"""Mastodon's mention needs an ASCII at sign after a non-word character."""
HASHTAG = re.compile("(?:^|[^/)\\w])[#\N{FULLWIDTH NUMBER SIGN}]\\w")
"""Mastodon's hashtag: a number sign (newer versions take the fullwidth one too)."""
LINK = re.compile(r"\w+://|(?<![\w@])[\w-]+\.[^\W\d_]{2,}", re.IGNORECASE)
"""A URL with a scheme, or a bare domain an app could turn into a link."""
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

HOSTILE = [
    pytest.param("@mallory", id="mention"),
    pytest.param("@mallory@evil.example", id="remote-mention"),
    pytest.param("x @mallory", id="mention-after-space"),
    pytest.param("#tag", id="hashtag"),
    pytest.param("\N{FULLWIDTH NUMBER SIGN}tag", id="fullwidth-hashtag"),
    pytest.param("https://evil.example", id="url"),
    pytest.param("evil.example/x", id="bare-domain"),
    pytest.param("www.evil.example", id="www"),
    pytest.param("xmpp:mallory", id="xmpp-scheme"),
    pytest.param("\x1b[31mred\x1b[0m", id="ansi-colour"),
    pytest.param("\x1b]8;;https://evil.example\x07click\x1b]8;;\x07", id="osc-hyperlink"),
    pytest.param("\x1b]0;title\x1b\\", id="osc-title"),
    pytest.param("\u202egnp.exe", id="bidi-override"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("line\nbreak\r\nand\ttab", id="line-breaks"),
    pytest.param("zero\u200bwidth@\u200bmallory", id="zero-width"),
    pytest.param("@" + "m" * 100_000, id="100k-name"),
]


@pytest.mark.parametrize("text", HOSTILE)
def test_neutral_leaves_nothing_to_parse(text: str) -> None:
    """No mention, hashtag, link, control character or escape survives, and length is capped."""
    safe = neutral(text)
    assert (MENTION.findall(safe), HASHTAG.findall(safe), LINK.findall(safe),
            CONTROL.findall(safe), len(safe) <= NAME_LIMIT) == ([], [], [], [], True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("push", "push", id="plain-name-unchanged"),
        pytest.param("queue:mailers", "queue:mailers", id="component-unchanged"),
        pytest.param("latency 2.5 s (warning at 1 min)", "latency 2.5 s (warning at 1 min)",
                     id="numbers-unchanged"),
        pytest.param("@mallory", "\N{FULLWIDTH COMMERCIAL AT}mallory", id="at-look-alike"),
        pytest.param("\x1b[31mred\x1b[0m", "red", id="ansi-removed"),
        pytest.param("a\nb", "a b", id="line-break-to-space"),
        pytest.param("x" * 200, "x" * 79 + "…", id="capped"),
    ],
)
def test_neutral_keeps_ordinary_text_readable(text: str, expected: str) -> None:
    """Ordinary names and numbers pass unchanged; hostile parts are replaced visibly."""
    assert neutral(text) == expected


def hostile_snapshot(name: str) -> Snapshot:
    queue = QueueStats(name, 12, 300.0, False, True)
    process = ProcessStats(identity=f"{name}:1:abc", alive=False, stale_reason=name,
                           hostname=name, pid=1, tag=name, version="7", queues=(name,),
                           concurrency=5, busy=0, rss_kb=1000, quiet=False, beat_age_s=1.0,
                           started_at=None)
    sidekiq = SidekiqStats(
        processed=1, failed=0, processed_today=1, failed_today=0, scheduled=0, retries=0,
        dead=0, enqueued=12, queues=(queue,), processes=(process,), processes_registered=1,
        live_processes=0, stale_processes=1, busy=0, concurrency=5, utilisation=0.0,
        anomaly_count=0, anomalies=())
    host = HostStats(
        hostname=name, memory_total_bytes=16 << 30, memory_available_bytes=8 << 30,
        memory_percent=50.0, swap_total_bytes=0, swap_used_bytes=0, swap_percent=0.0,
        load_1m=1.0, load_5m=1.0, load_15m=1.0, cpu_count=2, cpu_percent=5.0,
        disks=(DiskStats("/", None, None, None, None, error=name),),
        roles=(RoleMemory(name, 1, 1 << 20),))
    return Snapshot(T, RedisStats("redis://127.0.0.1:6379/0", "", True, rtt_ms=1.0,
                                  version=name, maxmemory_policy=name), sidekiq, host)


def hostile_event(name: str) -> Event:
    affected = (Affected(f"queue:{name}", W, T - 60, W, f"{name} latency 5 min", 300.0),)
    incident = Incident("inc-1", T - 60, affected, sequence=1, last_announced_at=T)
    return Event(EventKind.WORSENED, incident, T, f"worsened: queue:{name} ok→warning")


SETTINGS = Settings(instance="Example", admin_accts=("alice",), max_characters=5000)


def outside_text_of(text: str) -> str:
    """The text with the admins' own mentions taken off: what came from outside."""
    return text.replace("@alice", "")


@pytest.mark.parametrize("name", HOSTILE)
def test_admin_message_names_are_neutral(name: str) -> None:
    """The admin message about an incident with a hostile queue mentions only the admins."""
    _, admin = compose_event(hostile_event(name), hostile_snapshot(name), SETTINGS)
    body = outside_text_of(admin.text)
    assert (admin.text.startswith("@alice "), MENTION.findall(body), HASHTAG.findall(body),
            LINK.findall(body), CONTROL.findall(body.replace("\n", ""))) == (
        True, [], [], [], [])


@pytest.mark.parametrize("what", compose.ADMIN_DETAILS)
@pytest.mark.parametrize("name", HOSTILE)
def test_admin_details_are_neutral(name: str, what: str) -> None:
    """The ``queues``, ``processes``, ``memory`` and ``status`` replies neutralise names."""
    text = admin_details(what, hostile_snapshot(name), hostile_event(name).incident, T, SETTINGS)
    assert (MENTION.findall(text), HASHTAG.findall(text), LINK.findall(text),
            CONTROL.findall(text.replace("\n", ""))) == ([], [], [], [])


@pytest.mark.parametrize("name", HOSTILE)
def test_check_output_is_neutral(name: str) -> None:
    """``statusbot check`` prints no escape sequence or control character from Redis data."""
    out = io.StringIO()
    cli.render(hostile_snapshot(name), out)
    printed = out.getvalue()
    assert (CONTROL.findall(printed.replace("\n", "")), MENTION.findall(printed),
            max(len(line) for line in printed.splitlines()) < 1000) == ([], [], True)


def test_failure_notice_does_not_relay_mentions() -> None:
    """A refused post quoted to admins cannot mention whoever the post named."""
    from bot.model import Post, PostKind

    refused = Post(key="inc-1:1", kind=PostKind.UPDATE, text="Thanks @mallory, see #tag",
                   visibility="public", created_at=T)
    notice = compose.failure_notice(refused, "HTTP 422 from https://evil.example", T, SETTINGS)
    assert notice is not None
    body = outside_text_of(notice.text)
    assert (MENTION.findall(body), HASHTAG.findall(body), LINK.findall(body)) == ([], [], [])


@pytest.mark.parametrize("name", HOSTILE)
def test_dry_run_tick_lines_are_neutral(name: str) -> None:
    """What ``run --dry-run`` prints per tick carries no escape sequence or mention."""
    from bot.loop import TickReport
    from bot.model import Finding

    event = hostile_event(name)
    finding = Finding(f"queue:{name}", W, f"{name} latency 5 min", muted=name)
    report = TickReport(T, hostile_snapshot(name), None, (finding,), (event,), (), 0, None,
                        None, ())
    printed = cli.describe_tick(report)
    assert (CONTROL.findall(printed.replace("\n", "")), MENTION.findall(printed),
            max(len(line) for line in printed.splitlines()) < 1000) == ([], [], True)
