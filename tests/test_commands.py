"""Commands by mention: reading the text, parsing it, who sent it and whether they may."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot import defaults
from bot.commands import (
    ADMIN_COMMANDS,
    ADMIN_HELP,
    COMMANDS,
    CONFIRM_COMMANDS,
    CONFIRM_HELP,
    PUBLIC_COMMANDS,
    STRICT_NO_ARGS,
    TEXT_REQUIRED,
    USAGE,
    Admin,
    Command,
    CommandError,
    Maintenance,
    Role,
    Sender,
    Silence,
    UnknownCommand,
    authorize,
    effective_role,
    extract_text,
    help_text,
    parse,
    parse_duration,
    parse_maintenance,
    parse_silence,
    role_of,
    sender_from_notification,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mastodon-4.6.4"


def interaction_body(name: str, index: int) -> Any:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data["interactions"][index]["response"]["body"]


NOTIFICATION: Mapping[str, Any] = interaction_body("notifications-mention.json", 1)[0]
"""The real mention notification: ``admin`` mentions the bot ``mastodonpy_test``."""
REAL_STATUS: Mapping[str, Any] = NOTIFICATION["status"]
REAL_CONTENT: str = REAL_STATUS["content"]
BOT_ACCT = "mastodonpy_test"
BOT_ID = "117020565966271181"
BOT_MENTION: Mapping[str, Any] = REAL_STATUS["mentions"][0]
BOT_HCARD = REAL_CONTENT.removeprefix("<p>").removesuffix(" hello!</p>")
"""The bot's h-card mention exactly as Mastodon 4.6.4 renders it."""

_REPLY: Mapping[str, Any] = interaction_body("status-reply.json", 2)
OTHER_MENTION: Mapping[str, Any] = _REPLY["mentions"][0]
OTHER_HCARD = _REPLY["content"].removeprefix("<p>").removesuffix(" same!</p>")
"""Another account's (``mastodonpy_test_2``) h-card mention, as Mastodon renders it."""

CW_STATUS: Mapping[str, Any] = interaction_body("status-post-cw-direct.json", 0)
MENTIONS = (BOT_MENTION, OTHER_MENTION)


def real(text: str) -> str:
    """Return the real mention HTML with ``text`` where the fixture says ``hello!``."""
    return REAL_CONTENT.replace(" hello!</p>", f" {text}</p>")


def test_fixture_shapes() -> None:
    """The fixture holds what the tables below build on (h-card spans, ids, accts)."""
    assert (BOT_MENTION["acct"], BOT_MENTION["id"], OTHER_MENTION["acct"]) == (
        BOT_ACCT, BOT_ID, "mastodonpy_test_2")
    assert BOT_HCARD.startswith('<span class="h-card"') and BOT_HCARD.endswith("</a></span>")
    assert OTHER_HCARD.startswith('<span class="h-card"') and "mastodonpy_test_2" in OTHER_HCARD


def test_real_notification_is_an_unknown_command() -> None:
    """The recorded mention says "hello!": its text is read and it is not a command."""
    text = extract_text(REAL_STATUS["content"], REAL_STATUS["spoiler_text"], BOT_ACCT, BOT_ID,
                        REAL_STATUS["mentions"])
    with pytest.raises(UnknownCommand) as info:
        parse(text)
    expected = ("hello!", "I don't know the command \u201chello\u201d.")
    assert expected == (text, str(info.value))


NESTED = ("<p><span><a><span>@<span>mastodonpy_test</span></span></a></span> "
          "<b>sta</b>tus</p>")
LINK = ('<a href="https://status.example/p/1" rel="nofollow noopener" target="_blank">'
        '<span class="invisible">https://</span><span class="">status.example/p/1</span>'
        '<span class="invisible"></span></a>')
HASHTAG = ('<a href="http://localhost:3000/tags/redis" class="mention hashtag" rel="tag">'
           '#<span>redis</span></a>')

READ_CASES = [
    pytest.param(real("status?"), "", "status?", "status", id="real-hcard-status"),
    pytest.param(real("Status!"), "", "Status!", "status", id="real-hcard-capitalised"),
    pytest.param(real("STATUS."), "", "STATUS.", "status", id="real-hcard-upper-period"),
    pytest.param(real("incident Push notifications are late"), "",
                 "incident Push notifications are late", "incident", id="real-hcard-with-text"),
    pytest.param(f"<p>{BOT_HCARD} {OTHER_HCARD} queues</p>", "", "queues", "queues",
                 id="two-mentions-bot-first"),
    pytest.param(f"<p>{OTHER_HCARD} {BOT_HCARD} queues</p>", "", "queues", "queues",
                 id="two-mentions-other-first"),
    pytest.param(f"<p>{OTHER_HCARD} memory {BOT_HCARD}</p>", "", "memory", "memory",
                 id="bot-mention-at-the-end"),
    pytest.param(f"<p>status {BOT_HCARD} please</p>", "", "status please", "status",
                 id="bot-mention-in-the-middle"),
    pytest.param(f"<p>{BOT_HCARD}: status</p>", "", "status", "status",
                 id="colon-after-mention"),
    pytest.param(f"<p>{BOT_HCARD}</p><p>incident Push is slow</p><p>Working on it</p>", "",
                 "incident Push is slow Working on it", "incident", id="paragraphs"),
    pytest.param(f"<p>{BOT_HCARD} update first line<br>second line</p>", "",
                 "update first line second line", "update", id="line-break"),
    pytest.param(NESTED, "", "status", "status", id="nested-tags-classless-mention"),
    pytest.param("<p>&lt;status&gt;</p>", "", "<status>", None, id="entities-lt-gt"),
    pytest.param("<p>&#115;tatus</p>", "", "status", "status", id="entity-decimal"),
    pytest.param("<p>&#x53;TATUS</p>", "", "STATUS", "status", id="entity-hex"),
    pytest.param("<p>status&nbsp;please</p>", "", "status please", "status", id="entity-nbsp"),
    pytest.param("<p>st\u200batus</p>", "", "status", "status", id="zero-width-space"),
    pytest.param("<p>st\u200catu\u200ds</p>", "", "status", "status", id="zero-width-joiners"),
    pytest.param("<p>\u2060stat\ufeffus</p>", "", "status", "status", id="word-joiner-bom"),
    pytest.param("<p>st&#8203;atus</p>", "", "status", "status", id="zero-width-as-entity"),
    pytest.param("<p>\u202estatus</p>", "", "status", "status", id="bidi-override"),
    pytest.param("<p>@mastodonpy\u200b_test status</p>", "", "status", "status",
                 id="zero-width-inside-mention"),
    pytest.param("<p>\u0455tatus</p>", "", "\u0455tatus", None, id="cyrillic-dze-look-alike"),
    pytest.param("<p>st\u0430tus</p>", "", "st\u0430tus", None, id="cyrillic-a-look-alike"),
    pytest.param("<p>\uff53\uff54\uff41\uff54\uff55\uff53</p>", "",
                 "\uff53\uff54\uff41\uff54\uff55\uff53", "status", id="fullwidth-letters"),
    pytest.param("<p>@mastodonpy_test status</p>", "", "status", "status",
                 id="plain-text-mention-mastodon-mock"),
    pytest.param("<p>@mastodonpy_test@social.example status</p>", "", "status", "status",
                 id="plain-text-mention-with-domain"),
    pytest.param("<p>@mastodonpy_test@b\u00fccher.example status</p>", "", "status", "status",
                 id="plain-text-mention-idn-domain"),
    pytest.param("<p>@MASTODONPY_TEST ack</p>", "", "ack", "ack", id="plain-text-mention-case"),
    pytest.param("<p>@alice @mastodonpy_test @bob@other.example ack</p>", "", "ack", "ack",
                 id="plain-text-several-mentions"),
    pytest.param("<p>@mastodonpy_test incident cc @alice@other.example queues stuck</p>", "",
                 "incident cc queues stuck", "incident", id="other-mention-in-text-dropped"),
    pytest.param("<p>@mastodonpy_test update mail ops@example.com</p>", "",
                 "update mail ops@example.com", "update", id="email-is-not-a-mention"),
    pytest.param(f"<p>{BOT_HCARD} incident {HASHTAG} is down</p>", "",
                 "incident #redis is down", "incident", id="hashtag-kept"),
    pytest.param(f"<p>{BOT_HCARD} update see {LINK}</p>", "",
                 "update see https://status.example/p/1", "update", id="link-text-kept"),
    pytest.param(f'<p><a href="{OTHER_MENTION["url"]}">Bob</a> {BOT_HCARD} status</p>', "",
                 "status", "status", id="link-to-mentioned-account"),
    pytest.param("<p><script>ack</script>status<style>p{}</style></p>", "", "status",
                 "status", id="script-and-style-dropped"),
    pytest.param('<p><span class="h-card"><span class="h-card">@x</span>ack</span>status</p>',
                 "", "status", "status", id="nested-h-cards"),
    pytest.param('<p><a class="u-url mention">@mastodonpy_test status', "", "", "help",
                 id="unclosed-mention-link"),
    pytest.param("<p>unsilence", "", "unsilence", "unsilence", id="unclosed-paragraph"),
    pytest.param(f"<p>{BOT_HCARD}</p>", "status", "status", "status",
                 id="cw-only-command-in-spoiler"),
    pytest.param(f"<p>{BOT_HCARD} queues</p>", "status", "queues", "queues",
                 id="cw-content-wins"),
    pytest.param(f"<p>{BOT_HCARD}</p>", "@mastodonpy_test \u200bStatus!", "Status!", "status",
                 id="cw-cleaned-like-content"),
    pytest.param(CW_STATUS["content"], CW_STATUS["spoiler_text"], "Toot!", None,
                 id="real-cw-direct-content-wins"),
    pytest.param(f"<p>{BOT_HCARD}</p>", "", "", "help", id="only-the-mention"),
    pytest.param("", "", "", "help", id="empty"),
]


@pytest.mark.parametrize(("content", "spoiler", "text", "name"), READ_CASES)
def test_read_command(content: str, spoiler: str, text: str, name: str | None) -> None:
    """extract_text then parse: the text read and the command it is (None: unknown)."""
    read = extract_text(content, spoiler, BOT_ACCT, BOT_ID, MENTIONS)
    try:
        parsed: str | None = parse(read).name
    except UnknownCommand:
        parsed = None
    assert (text, name) == (read, parsed)


MEGABYTE = 1_000_000
HUGE_CASES = [
    pytest.param(real("status " + "a " * (MEGABYTE // 2)), "", "status",
                 id="one-megabyte-of-words"),
    pytest.param("<p>" + " " * MEGABYTE + "status</p>", "", "help", id="command-after-the-cap"),
    pytest.param("<span>" * (MEGABYTE // 6) + "status", "", "help",
                 id="nested-tags-past-the-cap"),
    pytest.param("<p>status " + "&amp;" * (MEGABYTE // 5) + "</p>", "", "status",
                 id="many-entities"),
    pytest.param("<p>" + "x" * MEGABYTE + "</p>", "", None, id="one-megabyte-word"),
    pytest.param(f"<p>{BOT_HCARD}</p>", "status " + "a" * MEGABYTE, "status",
                 id="one-megabyte-spoiler"),
]


@pytest.mark.parametrize(("content", "spoiler", "name"), HUGE_CASES)
def test_huge_status_is_cut_before_parsing(content: str, spoiler: str,
                                           name: str | None) -> None:
    """Only the first COMMAND_INPUT_MAX characters are read; the result is as short."""
    read = extract_text(content, spoiler, BOT_ACCT, BOT_ID, MENTIONS)
    try:
        parsed: str | None = parse(read).name
    except UnknownCommand:
        parsed = None
    assert (name, True) == (parsed, len(read) <= defaults.COMMAND_INPUT_MAX)


MALFORMED_MENTIONS = [
    pytest.param([], id="none"),
    pytest.param([{"id": None, "acct": None, "url": None}], id="nulls"),
    pytest.param([{"url": 3, "acct": ["x"], "id": {}}], id="wrong-types"),
    pytest.param([None, "x", 3], id="not-mappings"),
]


@pytest.mark.parametrize("mentions", MALFORMED_MENTIONS)
def test_malformed_mentions_are_tolerated(mentions: list[Any]) -> None:
    """Odd ``mentions`` entries are skipped; the h-card markup still drops the mention."""
    expected = "status"
    assert expected == extract_text(real("status"), "", BOT_ACCT, None, mentions)


PARSE_CASES = [
    pytest.param("", Command("help", "", ""), id="empty-is-help"),
    pytest.param("help", Command("help", "", "help"), id="help"),
    pytest.param("Status!", Command("status", "", "Status!"), id="status-bang"),
    pytest.param("status\u2026", Command("status", "", "status\u2026"), id="status-ellipsis"),
    pytest.param("status please", Command("status", "please", "status please"),
                 id="read-only-ignores-extra-words"),
    pytest.param("st\u200batus", Command("status", "", "st\u200batus"),
                 id="zero-width-in-word"),
    pytest.param("\U0001d42c\U0001d42d\U0001d41a\U0001d42d\U0001d42e\U0001d42c",
                 Command("status", "", "\U0001d42c\U0001d42d\U0001d41a\U0001d42d\U0001d42e"
                                       "\U0001d42c"), id="math-bold-is-nfkc-ascii"),
    pytest.param("QUEUES", Command("queues", "", "QUEUES"), id="queues"),
    pytest.param("memory", Command("memory", "", "memory"), id="memory"),
    pytest.param("processes", Command("processes", "", "processes"), id="processes"),
    pytest.param("report", Command("report", "", "report"), id="report"),
    pytest.param("advise", Command("advise", "", "advise"), id="advise"),
    pytest.param("incident Push is  slow", Command("incident", "Push is  slow",
                                                   "incident Push is  slow"), id="incident"),
    pytest.param("update: Fix deployed", Command("update", "Fix deployed",
                                                 "update: Fix deployed"), id="update-colon"),
    pytest.param("resolve", Command("resolve", "", "resolve"), id="resolve-without-text"),
    pytest.param("resolve All good", Command("resolve", "All good", "resolve All good"),
                 id="resolve-with-text"),
    pytest.param("ack", Command("ack", "", "ack"), id="ack"),
    pytest.param("silence 2h", Command("silence", "2h", "silence 2h"), id="silence"),
    pytest.param("silence 30m queue:push", Command("silence", "30m queue:push",
                                                   "silence 30m queue:push"),
                 id="silence-component"),
    pytest.param("unsilence", Command("unsilence", "", "unsilence"), id="unsilence"),
    pytest.param("maintenance 22:00 2h Upgrade", Command("maintenance", "22:00 2h Upgrade",
                                                         "maintenance 22:00 2h Upgrade"),
                 id="maintenance"),
    pytest.param("confirm", Command("confirm", "", "confirm"), id="confirm"),
    pytest.param("discard.", Command("discard", "", "discard."), id="discard"),
]


@pytest.mark.parametrize(("text", "command"), PARSE_CASES)
def test_parse(text: str, command: Command) -> None:
    """The first word, folded, is the command; the rest its arguments."""
    assert command == parse(text)


PARSE_ERRORS = [
    pytest.param("hello!", UnknownCommand, "I don't know the command \u201chello\u201d.",
                 id="unknown-word-echoed"),
    pytest.param("\u0455tatus", UnknownCommand, "I don't know that command.",
                 id="cyrillic-look-alike-not-echoed"),
    pytest.param("<status>", UnknownCommand, "I don't know that command.", id="angle-brackets"),
    pytest.param("status2", UnknownCommand, "I don't know the command \u201cstatus2\u201d.",
                 id="digit-in-word"),
    pytest.param("x" * 5000, UnknownCommand, "I don't know that command.", id="long-word"),
    pytest.param("#status", UnknownCommand, "I don't know that command.", id="hashtag"),
    pytest.param("incident", CommandError,
                 f"\u201cincident\u201d needs a text. Write: {USAGE['incident']}",
                 id="incident-needs-text"),
    pytest.param("update", CommandError,
                 f"\u201cupdate\u201d needs a text. Write: {USAGE['update']}",
                 id="update-needs-text"),
    pytest.param("ack please", CommandError, "\u201cack\u201d takes nothing after it. Write: ack",
                 id="ack-takes-nothing"),
    pytest.param("unsilence memory", CommandError,
                 "\u201cunsilence\u201d takes nothing after it. Write: unsilence",
                 id="unsilence-takes-nothing"),
    pytest.param("silence", CommandError, f"Write: {USAGE['silence']}", id="silence-bare"),
    pytest.param("silence forever", CommandError,
                 "not a duration: 'forever' (write e.g. 30m, 2h, 1d)", id="silence-bad-duration"),
    pytest.param("silence 0m", CommandError, "a duration must be longer than zero, got '0m'",
                 id="silence-zero"),
    pytest.param("silence 8d", CommandError, "a silence lasts at most 7d, got '8d'",
                 id="silence-too-long"),
    pytest.param("silence 2h queue:push pull", CommandError, f"Write: {USAGE['silence']}",
                 id="silence-two-components"),
    pytest.param("silence 2h <b>", CommandError,
                 f"not a component: '<b>'. Write: {USAGE['silence']}", id="silence-bad-component"),
    pytest.param("maintenance 22:00 2h", CommandError, f"Write: {USAGE['maintenance']}",
                 id="maintenance-without-text"),
    pytest.param("maintenance tomorrow 2h Upgrade", CommandError,
                 "not a start time: 'tomorrow' (write e.g. 22:00, 2026-12-01T02:00Z, now or "
                 "+30m)", id="maintenance-bad-start"),
    pytest.param("maintenance 22:00 soon Upgrade", CommandError,
                 "not a duration: 'soon' (write e.g. 30m, 2h, 1d)",
                 id="maintenance-bad-duration"),
]


@pytest.mark.parametrize(("text", "error", "message"), PARSE_ERRORS)
def test_parse_errors(text: str, error: type[CommandError], message: str) -> None:
    """Unknown words and bad arguments are user errors whose message is the reply."""
    with pytest.raises(CommandError) as info:
        parse(text)
    assert (error, message) == (type(info.value), str(info.value))


DURATIONS = [
    pytest.param("30m", 1800.0, id="minutes"),
    pytest.param("2h", 7200.0, id="hours"),
    pytest.param("1d", 86400.0, id="days"),
    pytest.param("1h30m", 5400.0, id="combined"),
    pytest.param("\uff12\uff48", 7200.0, id="fullwidth"),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_parse_duration(text: str, seconds: float) -> None:
    """Durations read like 30m, 2h, 1d (bot.config's reader)."""
    assert seconds == parse_duration(text)


@pytest.mark.parametrize("text", ["", "soon", "0m", "-5m", "2 hours", "\u0662h"])
def test_parse_duration_errors(text: str) -> None:
    """Anything else, zero included, is a CommandError (a user error), not a ValueError."""
    with pytest.raises(CommandError) as info:
        parse_duration(text)
    assert CommandError is type(info.value)


@pytest.mark.parametrize(("args", "silence"), [
    pytest.param("2h", Silence(7200.0, None), id="everything"),
    pytest.param("30m Queue:Push", Silence(1800.0, "queue:push"), id="component-folded"),
    pytest.param("1d queue:*", Silence(86400.0, "queue:*"), id="pattern"),
])
def test_parse_silence(args: str, silence: Silence) -> None:
    """Silence is written ``silence <duration> [component]``."""
    assert silence == parse_silence(args)


NOW = datetime.fromisoformat("2026-12-01T20:30:00+00:00").timestamp()
"""Tuesday 2026-12-01 21:30 in Berlin (CET, UTC+1)."""
BEFORE_DST = datetime.fromisoformat("2026-03-28T22:00:00+00:00").timestamp()
"""Saturday 23:00 in Berlin; at 02:00 the clocks jump to 03:00 (CEST, UTC+2)."""


def utc(text: str) -> float:
    return datetime.fromisoformat(text + "+00:00").timestamp()


MAINTENANCE_CASES = [
    pytest.param("22:00 2h Upgrading Mastodon", NOW, "Europe/Berlin",
                 Maintenance(utc("2026-12-01T21:00"), 7200.0, "Upgrading Mastodon"),
                 id="clock-later-today"),
    pytest.param("21:00 2h Upgrade", NOW, "Europe/Berlin",
                 Maintenance(utc("2026-12-02T20:00"), 7200.0, "Upgrade"),
                 id="clock-passed-means-tomorrow"),
    pytest.param("21:27 1h Upgrade", NOW, "Europe/Berlin",
                 Maintenance(utc("2026-12-01T20:27"), 3600.0, "Upgrade"),
                 id="clock-just-passed-is-within-grace"),
    pytest.param("21:00 2h Upgrade", NOW, "UTC",
                 Maintenance(utc("2026-12-01T21:00"), 7200.0, "Upgrade"), id="clock-in-utc"),
    pytest.param("03:00 1h Upgrade", BEFORE_DST, "Europe/Berlin",
                 Maintenance(utc("2026-03-29T01:00"), 3600.0, "Upgrade"), id="clock-after-dst"),
    pytest.param("02:30 1h Upgrade", BEFORE_DST, "Europe/Berlin",
                 Maintenance(utc("2026-03-29T01:30"), 3600.0, "Upgrade"),
                 id="clock-skipped-by-dst-falls-an-hour-later"),
    pytest.param("now 30m Restarting", NOW, "Europe/Berlin",
                 Maintenance(NOW, 1800.0, "Restarting"), id="now"),
    pytest.param("NOW 30m Restarting", NOW, "Europe/Berlin",
                 Maintenance(NOW, 1800.0, "Restarting"), id="now-upper-case"),
    pytest.param("+30m 1h Restarting", NOW, "Europe/Berlin",
                 Maintenance(NOW + 1800.0, 3600.0, "Restarting"), id="relative"),
    pytest.param("2026-12-02T02:00Z 2h Database upgrade", NOW, "Europe/Berlin",
                 Maintenance(utc("2026-12-02T02:00"), 7200.0, "Database upgrade"),
                 id="iso-utc"),
    pytest.param("2026-12-02T02:00 2h Upgrade", NOW, "Europe/Berlin",
                 Maintenance(utc("2026-12-02T01:00"), 7200.0, "Upgrade"),
                 id="iso-without-offset-is-in-tz"),
    pytest.param("2026-12-02T02:00+05:00 2h Upgrade", NOW, "Europe/Berlin",
                 Maintenance(utc("2026-12-01T21:00"), 7200.0, "Upgrade"), id="iso-offset"),
    pytest.param("\uff12\uff12:\uff10\uff10 \uff12h Upgrade", NOW, "Europe/Berlin",
                 Maintenance(utc("2026-12-01T21:00"), 7200.0, "Upgrade"),
                 id="fullwidth-digits"),
]


@pytest.mark.parametrize(("args", "now", "tz", "maintenance"), MAINTENANCE_CASES)
def test_parse_maintenance(args: str, now: float, tz: str, maintenance: Maintenance) -> None:
    """A window is ``maintenance <start> <duration> <text>``, the start read in the time zone."""
    assert maintenance == parse_maintenance(args, now, tz)


MAINTENANCE_ERRORS = [
    pytest.param("2026-12-01T02:00Z 2h Upgrade", "that start is in the past", id="iso-past"),
    pytest.param("2027-06-01T00:00Z 1h Upgrade", "more than 90d ahead", id="too-far-ahead"),
    pytest.param("22:00 8d Upgrade", "a maintenance lasts at most 7d", id="too-long"),
    pytest.param("22:00 0m Upgrade", "longer than zero", id="zero-duration"),
    pytest.param("+0m 1h Upgrade", "longer than zero", id="relative-zero"),
    pytest.param("25:00 1h Upgrade", "not a start time: '25:00'", id="no-such-hour"),
    pytest.param("2026-13-01T00:00Z 1h Upgrade", "not a start time", id="no-such-month"),
    pytest.param("22:00 2h", "Write: maintenance <start>", id="no-text"),
    pytest.param("", "Write: maintenance <start>", id="nothing"),
]


@pytest.mark.parametrize(("args", "fragment"), MAINTENANCE_ERRORS)
def test_parse_maintenance_errors(args: str, fragment: str) -> None:
    """Impossible windows are user errors that say what is wrong."""
    with pytest.raises(CommandError) as info:
        parse_maintenance(args, NOW, "Europe/Berlin")
    assert (True, str(info.value)) == (fragment in str(info.value), str(info.value))


ADMINS = (Admin("alice", "100"), Admin("bob@other.example", "200"))
"""A local admin and a remote one."""


def sender(account_id: Any = "100", acct: Any = "alice", bot: Any = False,
           visibility: Any = "direct") -> Sender:
    """Build a Sender from anything, malformed included (the ACL must cope)."""
    fields: dict[str, Any] = {"account_id": account_id, "acct": acct, "bot": bot,
                              "visibility": visibility}
    return Sender(**fields)


ROLE_CASES = [
    pytest.param(sender(), ADMINS, None, Role.ADMIN, id="local-admin"),
    pytest.param(sender("200", "bob@other.example"), ADMINS, None, Role.ADMIN,
                 id="remote-admin"),
    pytest.param(sender("200", "bob@Other.EXAMPLE"), ADMINS, None, Role.ADMIN,
                 id="remote-admin-domain-case"),
    pytest.param(sender(100), ADMINS, None, Role.ADMIN, id="integer-id-from-mastodon-py"),
    pytest.param(sender(visibility="public"), ADMINS, None, Role.ADMIN,
                 id="role-ignores-visibility"),
    pytest.param(sender("300", "alice@evil.example"), ADMINS, None, Role.MEMBER,
                 id="remote-same-username"),
    pytest.param(sender("100", "alice@evil.example"), ADMINS, None, Role.MEMBER,
                 id="admin-id-but-remote-acct"),
    pytest.param(sender("999", "alice"), ADMINS, None, Role.MEMBER, id="same-acct-other-id"),
    pytest.param(sender("200", "bob"), ADMINS, None, Role.MEMBER,
                 id="local-bob-is-not-remote-bob"),
    pytest.param(sender("200", "Bob@other.example"), ADMINS, None, Role.MEMBER,
                 id="username-case-differs"),
    pytest.param(sender("100", "Alice"), ADMINS, None, Role.MEMBER,
                 id="local-username-case-differs"),
    pytest.param(sender("300", "mallory"), ADMINS, None, Role.MEMBER, id="member"),
    pytest.param(sender(), (), None, Role.MEMBER, id="no-admins"),
    pytest.param(sender(), (Admin("alice@social.example", "100"),), "social.example",
                 Role.ADMIN, id="admin-written-with-local-domain"),
    pytest.param(sender(acct="alice@Social.Example"), ADMINS, "social.example", Role.ADMIN,
                 id="sender-with-local-domain"),
    pytest.param(sender(), (Admin("alice@social.example", "100"),), None, Role.MEMBER,
                 id="local-domain-unknown-so-remote"),
    pytest.param(sender(bot=True), ADMINS, None, Role.DENIED, id="bot-account"),
    pytest.param(sender("300", "mallory", bot=True), ADMINS, None, Role.DENIED,
                 id="bot-member"),
    pytest.param(sender(bot=None), ADMINS, None, Role.DENIED, id="bot-unknown"),
    pytest.param(sender(bot="false"), ADMINS, None, Role.DENIED, id="bot-not-a-bool"),
    pytest.param(sender(account_id=None), ADMINS, None, Role.DENIED, id="id-none"),
    pytest.param(sender(account_id=""), ADMINS, None, Role.DENIED, id="id-empty"),
    pytest.param(sender(account_id=True), ADMINS, None, Role.DENIED, id="id-bool"),
    pytest.param(sender(account_id=" 100"), ADMINS, None, Role.DENIED, id="id-padded"),
    pytest.param(sender(acct=None), ADMINS, None, Role.DENIED, id="acct-none"),
    pytest.param(sender(acct=""), ADMINS, None, Role.DENIED, id="acct-empty"),
    pytest.param(sender(acct="@alice"), ADMINS, None, Role.DENIED, id="acct-leading-at"),
    pytest.param(sender(acct="alice@"), ADMINS, None, Role.DENIED, id="acct-empty-domain"),
    pytest.param(sender(acct="alice@a@b"), ADMINS, None, Role.DENIED, id="acct-two-domains"),
    pytest.param(sender(acct="alice "), ADMINS, None, Role.DENIED, id="acct-space"),
    pytest.param(None, ADMINS, None, Role.DENIED, id="sender-none"),
    pytest.param({"account_id": "100", "acct": "alice", "bot": False}, ADMINS, None,
                 Role.DENIED, id="sender-a-dict"),
    pytest.param(sender(), None, None, Role.DENIED, id="admins-none"),
    pytest.param(sender(), (Admin("alice", None), *ADMINS), None,  # type: ignore[arg-type]
                 Role.DENIED, id="malformed-admin-denies-all"),
    pytest.param(sender(), (None,), None, Role.DENIED, id="admin-none"),
]


@pytest.mark.parametrize(("who", "admins", "local_domain", "role"), ROLE_CASES)
def test_role_of(who: Any, admins: Any, local_domain: str | None, role: Role) -> None:
    """Admin only by account ID and full acct; bots and anything malformed are denied."""
    assert role == role_of(who, admins, local_domain=local_domain)[0]


@pytest.mark.parametrize(("who", "reason"), [
    pytest.param(sender(), "admin alice (id 100)", id="admin"),
    pytest.param(sender("100", "alice@evil.example"),
                 "account id 100 is admin alice's but the acct is alice@evil.example",
                 id="id-match-only"),
    pytest.param(sender("999"), "acct alice is admin alice's but the account id 999 is not",
                 id="acct-match-only"),
    pytest.param(sender("300", "mallory"), "not an admin", id="member"),
    pytest.param(sender(bot=True), "bot account", id="bot"),
    pytest.param(None, "error while checking: AttributeError(\"'NoneType' object has no "
                       "attribute 'bot'\")", id="error"),
])
def test_role_reasons(who: Any, reason: str) -> None:
    """Every role comes with a reason for the log, the suspicious near-misses named."""
    assert reason == role_of(who, ADMINS)[1]


def notification(**account: Any) -> dict[str, Any]:
    """The real notification with some account fields replaced (None: removed)."""
    fields = {**NOTIFICATION["account"], **account}
    return {**NOTIFICATION, "account": {k: v for k, v in fields.items() if v is not None}}


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param(NOTIFICATION, Sender("117020565693913441", "admin", False, "public"),
                 id="real-fixture"),
    pytest.param(notification(id=117020565693913441),
                 Sender("117020565693913441", "admin", False, "public"), id="integer-id"),
    pytest.param(notification(display_name="alice", acct="mallory"),
                 Sender("117020565693913441", "mallory", False, "public"),
                 id="display-name-ignored"),
    pytest.param(notification(bot=None), Sender("117020565693913441", "admin", True, "public"),
                 id="bot-missing-counts-as-bot"),
])
def test_sender_from_notification(data: Mapping[str, Any], expected: Sender) -> None:
    """The sender is the notification's account id, acct and bot flag, and the visibility."""
    assert expected == sender_from_notification(data)


@pytest.mark.parametrize("data", [
    pytest.param({}, id="empty"),
    pytest.param(notification(acct=None), id="acct-missing"),
    pytest.param(notification(id=None), id="id-missing"),
    pytest.param(notification(acct=""), id="acct-empty"),
    pytest.param({**NOTIFICATION, "status": None}, id="status-null"),
    pytest.param({**NOTIFICATION, "account": "admin"}, id="account-a-string"),
])
def test_sender_from_malformed_notification(data: Mapping[str, Any]) -> None:
    """A notification without a usable sender is a ValueError (the caller denies)."""
    with pytest.raises(ValueError, match="malformed mention notification"):
        sender_from_notification(data)


def test_display_name_spoof_is_a_member() -> None:
    """A remote account named "alice" on display, acct alice@evil.example, is a member."""
    who = sender_from_notification(notification(id="300", acct="alice@evil.example",
                                                username="alice", display_name="alice"))
    expected = Role.MEMBER
    assert expected == role_of(who, ADMINS)[0]


A, M, D = Role.ADMIN, Role.MEMBER, Role.DENIED
PUBLIC_DEFAULT = {"public_commands": PUBLIC_COMMANDS}
REFUSED_ADMIN_ONLY = "Sorry, only the admins of this server can use"
REFUSED_VISIBILITY = "Please send admin commands like"
REFUSED_CONFIRM = "is only used when new incidents wait"

AUTHORIZE_CASES = [
    pytest.param("help", M, "public", {}, True, "public command", id="member-help"),
    pytest.param("status", M, "public", {}, True, "public command", id="member-status"),
    pytest.param("status", M, "direct", {}, True, "public command", id="member-status-direct"),
    pytest.param("queues", M, "direct", {}, False, REFUSED_ADMIN_ONLY, id="member-queues"),
    pytest.param("incident", M, "direct", {}, False, REFUSED_ADMIN_ONLY,
                 id="member-incident"),
    pytest.param("queues", A, "direct", {}, True, "admin command", id="admin-queues-direct"),
    pytest.param("incident", A, "direct", {}, True, "admin command", id="admin-incident"),
    pytest.param("queues", A, "public", {}, False, REFUSED_VISIBILITY,
                 id="admin-queues-public"),
    pytest.param("silence", A, "unlisted", {}, False, REFUSED_VISIBILITY,
                 id="admin-silence-unlisted"),
    pytest.param("ack", A, "private", {}, False, REFUSED_VISIBILITY, id="admin-ack-private"),
    pytest.param("ack", A, "private", {"admin_visibilities": {"direct", "private"}}, True,
                 "admin command", id="admin-ack-private-allowed-by-config"),
    pytest.param("ack", A, None, {}, False, REFUSED_VISIBILITY, id="admin-visibility-none"),
    pytest.param("status", A, "public", {}, True, "public command", id="admin-status-public"),
    pytest.param("help", D, "direct", {}, False, "sender denied", id="denied-help"),
    pytest.param("queues", D, "direct", {}, False, "sender denied", id="denied-queues"),
    pytest.param("confirm", A, "direct", {}, False, REFUSED_CONFIRM, id="confirm-off"),
    pytest.param("discard", A, "direct", {"confirm_enabled": True}, True, "admin command",
                 id="discard-on"),
    pytest.param("confirm", M, "direct", {"confirm_enabled": True}, False, REFUSED_ADMIN_ONLY,
                 id="member-confirm"),
    pytest.param("status", M, "public", {"public_commands": {"help"}}, False,
                 REFUSED_ADMIN_ONLY, id="status-made-admin-only"),
    pytest.param("status", A, "public", {"public_commands": {"help"}}, False,
                 REFUSED_VISIBILITY, id="status-made-admin-only-admin-public"),
    pytest.param("help", M, "public", {"public_commands": set()}, False, REFUSED_ADMIN_ONLY,
                 id="nothing-public"),
    pytest.param("incident", M, "public", {"public_commands": {"help", "incident"}}, False,
                 REFUSED_ADMIN_ONLY, id="admin-command-never-public"),
    pytest.param("frobnicate", A, "direct", {}, False, "unknown command", id="unknown-name"),
    pytest.param("status", "admin", "direct", {}, False, "sender denied", id="role-a-string"),
    pytest.param("status", M, "public", {"public_commands": None}, False,
                 "error while checking", id="error-denies"),
]


@pytest.mark.parametrize(("name", "role", "visibility", "options", "allowed", "reason"),
                         AUTHORIZE_CASES)
def test_authorize(name: str, role: Any, visibility: Any, options: dict[str, Any],
                   allowed: bool, reason: str) -> None:
    """Members get the public subset; admin commands need a direct message; errors deny."""
    got, why = authorize(Command(name, "", name), role, visibility, **options)
    assert (allowed, True) == (got, why.startswith(reason) or reason in why)


@pytest.mark.parametrize(("role", "visibility", "options", "expected"), [
    pytest.param(A, "direct", {}, A, id="admin-direct"),
    pytest.param(A, "public", {}, M, id="admin-public-acts-as-member"),
    pytest.param(A, "private", {"admin_visibilities": {"direct", "private"}}, A,
                 id="admin-private-allowed"),
    pytest.param(M, "direct", {}, M, id="member"),
    pytest.param(D, "direct", {}, D, id="denied"),
])
def test_effective_role(role: Role, visibility: str, options: dict[str, Any],
                        expected: Role) -> None:
    """An admin outside a direct message gets member answers (no numbers in public)."""
    assert expected == effective_role(role, visibility, **options)


HELP_CASES = [
    pytest.param(M, {}, "I watch this server's health and post when something is wrong. "
                        "Mention me with: status (how things are now), help (this text).",
                 id="member"),
    pytest.param(M, {"public_commands": {"help"}}, "I watch this server's health and post "
                 "when something is wrong. Mention me with: help (this text).",
                 id="member-help-only"),
    pytest.param(M, {"public_commands": set()}, "I watch this server's health and post when "
                 "something is wrong. Its admins can talk to me; there is nothing to ask me "
                 "for now.", id="member-nothing-public"),
    pytest.param(A, {}, ADMIN_HELP, id="admin"),
    pytest.param(A, {"confirm_enabled": True}, ADMIN_HELP + CONFIRM_HELP, id="admin-confirm"),
]


@pytest.mark.parametrize(("role", "options", "expected"), HELP_CASES)
def test_help_text(role: Role, options: dict[str, Any], expected: str) -> None:
    """Help lists what the reader may send, and fits a reply with room for the mention."""
    text = help_text(role, **options)
    assert (expected, True) == (text, len(text) <= 400)


def test_admin_help_names_every_command() -> None:
    """Every command the bot knows is in the admin help (with confirm mode on)."""
    text = ADMIN_HELP + CONFIRM_HELP
    assert set() == {name for name in COMMANDS if name not in text}


def test_command_sets_are_consistent() -> None:
    """The command tables agree with each other and with bot.defaults."""
    assert (frozenset(defaults.PUBLIC_COMMANDS), True, True, True, True) == (
        PUBLIC_COMMANDS,
        CONFIRM_COMMANDS <= ADMIN_COMMANDS,
        STRICT_NO_ARGS <= COMMANDS and TEXT_REQUIRED <= ADMIN_COMMANDS,
        set(USAGE) <= COMMANDS,
        PUBLIC_COMMANDS - {"help"} <= ADMIN_COMMANDS,
    )
