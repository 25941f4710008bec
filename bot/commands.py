"""Commands by mention, the pure part: the text of a mention, its command, who sent it, may they.

Nothing here reads a clock, the network, the environment or a file: the status
HTML, the sender, the admins and ``now`` are arguments. Executing a command is
someone else's job; this module only says what was asked and whether it is allowed.

Reading the command (``extract_text`` then ``parse``):

- The status HTML is turned into plain text with the standard library's
  ``html.parser``; entities are decoded, block elements become spaces and
  whitespace is collapsed. Only the first ``defaults.COMMAND_INPUT_MAX``
  characters are read.
- Every mention is dropped, the bot's and anybody else's, wherever it stands: an
  h-card span, a link whose class says ``mention`` (not ``hashtag``), a link to a
  mentioned account or to the bot, a link whose text is ``@user`` or
  ``@user@domain``, and plain ``@user`` / ``@user@domain`` text (mastodon-mock
  sends plain text). Dropping all of them also keeps a command's text from
  making the bot's own post mention people.
- Invisible format characters (Unicode category Cf: zero-width space, joiners,
  U+2060, U+FEFF, soft hyphen, bidi controls) are removed, so ``st\u200batus``
  reads ``status``.
- Punctuation left at the start after the mentions are gone (``@bot: status``)
  is ignored.
- The command is in the content. The content warning (``spoiler_text``) is
  ignored unless the content has nothing left, then the command is read from it.
- The first word is the command word: NFKC-normalised, case-folded, trailing
  punctuation ignored (``Status!``, ``STATUS.``). It must then be ASCII
  letters. So ``status`` in fullwidth letters (U+FF53 ...), which NFKC maps to
  ASCII, is ``status``, while look-alikes that NFKC keeps non-ASCII (a Cyrillic
  dze U+0455 for the ``s``) make an unknown command; look-alikes are never
  guessed. This is safe because the command word is not identity: who may run a
  command is decided by account, not by text.
- No text at all is ``help``. An unknown word raises ``UnknownCommand``; wrong
  arguments raise ``CommandError``. Both are user errors: their message is the
  reply (add ``help_text``), never a traceback.

Identity and permission (``role_of`` then ``authorize``), failing closed:

- A sender is an admin only when some configured admin has the same account ID
  and the same full acct: ``alice`` is local and never ``alice@elsewhere``;
  ``bob@other.example`` matches with the domain compared case-insensitively and
  the username exactly. Display names never count. Bot accounts are denied. Any
  error while checking (malformed data included) denies.
- Admin-only commands need a visibility in ``admin_visibilities`` (default:
  direct); members may send ``public_commands`` (default ``help`` and
  ``status``, always a subset of ``PUBLIC_COMMANDS``, whatever is configured).
  ``confirm`` and ``discard`` exist only when incidents wait for confirmation.
"""

from __future__ import annotations

import enum
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any, NamedTuple

from bot import config as _config
from bot import defaults

PUBLIC_COMMANDS: frozenset[str] = frozenset({"help", "status"})
"""Commands members may send (configurable as a subset; admins may send them too)."""

ADMIN_COMMANDS: frozenset[str] = frozenset({
    "status", "queues", "memory", "processes", "report", "advise",
    "incident", "update", "resolve", "ack", "silence", "unsilence", "maintenance",
    "confirm", "discard",
})
"""Commands for admins. ``status`` is both: admins get the numbers."""

COMMANDS: frozenset[str] = PUBLIC_COMMANDS | ADMIN_COMMANDS
"""Every command word the bot knows."""

CONFIRM_COMMANDS: frozenset[str] = frozenset({"confirm", "discard"})
"""Commands that exist only when the config sets ``incident_mode = "confirm"``."""

STRICT_NO_ARGS: frozenset[str] = frozenset({"ack", "unsilence", "confirm", "discard"})
"""Commands that change state and take no arguments: extra words are an error, so an
admin never gets an action other than the one typed. Read-only commands ignore extra
words (``status please``)."""

TEXT_REQUIRED: frozenset[str] = frozenset({"incident", "update"})
"""Commands whose text is required."""

USAGE: Mapping[str, str] = {
    "incident": "incident <text>, e.g. incident Notifications are late",
    "update": "update <text>, e.g. update The fix is deployed, queues are draining",
    "resolve": "resolve [text]",
    "ack": "ack",
    "silence": "silence <duration> [component], e.g. silence 2h queue:pull",
    "unsilence": "unsilence",
    "maintenance": "maintenance <start> <duration> <text>, e.g. maintenance 22:00 2h "
                   "Upgrading to the new Mastodon version (start: 22:00, "
                   "2026-12-01T02:00Z, now or +30m)",
    "confirm": "confirm",
    "discard": "discard",
}
"""How each command with arguments (or strictly none) is written, for error replies."""

ADMIN_HELP = (
    "Admin commands (send them as a direct message): help, status, queues, memory, "
    "processes, "
    "report, advise; incident <text>, update <text>, resolve [text], ack; "
    "silence <duration> [component], unsilence; maintenance <start> <duration> <text> "
    "(start: 22:00, 2026-12-01T02:00Z, now or +30m). Durations: 30m, 2h, 1d."
)
"""Help for admins (a reply: short, well under 500 characters)."""

CONFIRM_HELP = " When an incident waits for confirmation: confirm, or discard."
"""Appended to ``ADMIN_HELP`` when the config sets ``incident_mode = "confirm"``."""

MEMBER_HELP = "I watch this server's health and post when something is wrong. {commands}"
"""Help for members; ``{commands}`` is ``MEMBER_COMMANDS_HELP`` or ``MEMBER_NO_COMMANDS``."""

MEMBER_COMMANDS_HELP = "Mention me with: {list}."
"""How the member help lists the public commands."""

MEMBER_COMMAND_TEXT: Mapping[str, str] = {
    "status": "status (how things are now)",
    "help": "help (this text)",
}
"""Each public command as the member help lists it."""

MEMBER_NO_COMMANDS = "Its admins can talk to me; there is nothing to ask me for now."
"""Member help when no command is public."""

_FORMAT_CATEGORY = "Cf"
_MENTION_TEXT = re.compile(r"(?<![\w@/])@\w(?:[\w.-]*\w)?(?:@\w(?:[\w.-]*\w)?)?(?![\w@])")
"""A plain-text mention: ``@user`` or ``@user@domain`` standing as a word (not an e-mail)."""
_ANCHOR_MENTION = re.compile(r"@[^\s@]+(?:@[^\s@]+)?")
_LEADING_JUNK = re.compile(r"^[\s:,;.!?\-\u2013\u2014]+")
_BLOCK_TAGS = frozenset({
    "p", "br", "div", "li", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "tr", "td", "th", "table", "section", "article", "header", "footer",
})
_HIDDEN_TAGS = frozenset({"script", "style", "template", "head", "title"})
_VOID_TAGS = frozenset({"br", "hr", "img", "input", "meta", "link", "wbr", "area", "base",
                        "col", "embed", "source", "track", "param"})
_COMMAND_WORD = re.compile(r"[a-z]+")
_ECHO_WORD = re.compile(r"[A-Za-z0-9]{1,20}")
_COMPONENT = re.compile(r"[a-z0-9_.*:-]{1,64}")
_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_START_HELP = "write e.g. 22:00, 2026-12-01T02:00Z, now or +30m"


# --- Reading the command ---


@dataclass(frozen=True)
class Command:
    """A command as asked: its canonical ``name``, the ``args`` after it, the ``raw`` text."""

    name: str
    args: str
    raw: str


class CommandError(Exception):
    """A user error: the message is the reply (with help), never logged as a bug."""


class UnknownCommand(CommandError):
    """The command word is not one the bot knows; ``word`` is what was written."""

    def __init__(self, word: str) -> None:
        self.word = word
        shown = _folded(word[:100])
        if _ECHO_WORD.fullmatch(shown):
            super().__init__(f"I don't know the command \u201c{shown}\u201d.")
        else:
            super().__init__("I don't know that command.")


class Silence(NamedTuple):
    """The arguments of ``silence``: for how many seconds, and which component (None: all)."""

    seconds: float
    component: str | None


class Maintenance(NamedTuple):
    """The arguments of ``maintenance``: start (epoch s), duration (s) and the text to post."""

    start: float
    duration: float
    text: str


class _TextParser(HTMLParser):
    """Collect the visible text of status HTML, leaving mentions out."""

    def __init__(self, mention_hrefs: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.mention_hrefs = mention_hrefs
        self.out: list[str] = []
        # A dropped element (h-card span, hidden tag): its tag and how deep we are in it.
        self.drop_tag: str | None = None
        self.drop_depth = 0
        # Open links: (is a mention by its attributes, text collected so far).
        self.anchors: list[tuple[bool, list[str]]] = []

    def _emit(self, text: str) -> None:
        if self.drop_tag is not None:
            return
        (self.anchors[-1][1] if self.anchors else self.out).append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.drop_tag is not None:
            if tag == self.drop_tag and tag not in _VOID_TAGS:
                self.drop_depth += 1
            return
        classes = set()
        href = ""
        for name, value in attrs:
            if name == "class" and value:
                classes.update(value.split())
            elif name == "href" and value:
                href = value
        if tag in _HIDDEN_TAGS or (tag == "span" and "h-card" in classes):
            self.drop_tag, self.drop_depth = tag, 1
            return
        if tag in _BLOCK_TAGS:
            self._emit("\n")
        if tag == "a":
            is_mention = ("mention" in classes and "hashtag" not in classes) or (
                href in self.mention_hrefs)
            self.anchors.append((is_mention, []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self._emit("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.drop_tag is not None:
            if tag == self.drop_tag:
                self.drop_depth -= 1
                if self.drop_depth == 0:
                    self.drop_tag = None
            return
        if tag == "a" and self.anchors:
            self._close_anchor()
        elif tag in _BLOCK_TAGS:
            self._emit("\n")

    def _close_anchor(self) -> None:
        is_mention, parts = self.anchors.pop()
        text = "".join(parts)
        if not is_mention and not _ANCHOR_MENTION.fullmatch(_remove_invisible(text).strip()):
            self._emit(text)

    def handle_data(self, data: str) -> None:
        self._emit(data)

    def text(self) -> str:
        """Return the text collected, closing any link left open."""
        self.close()
        while self.anchors:
            self._close_anchor()
        return "".join(self.out)


def _remove_invisible(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) != _FORMAT_CATEGORY)


def _plain(text: str, accts: re.Pattern[str] | None) -> str:
    """Return ``text`` without invisible characters and mentions, whitespace collapsed."""
    text = _remove_invisible(text)
    if accts is not None:
        text = accts.sub(" ", text)
    text = _MENTION_TEXT.sub(" ", text)
    return _LEADING_JUNK.sub("", " ".join(text.split()))


def _known_mentions(bot_acct: str, bot_account_id: str | None,
                    mentions: Sequence[Mapping[str, Any]]) -> tuple[frozenset[str],
                                                                    re.Pattern[str] | None]:
    """Return the links of the mentioned accounts, and a pattern for them as plain text.

    The pattern matches ``@acct`` of the bot and of every mentioned account, and
    ``@username@any.domain`` of the bot (as its own mention entry names it, found
    by ``bot_account_id``), so that a mention the general shape misses (an
    internationalised domain) still goes.
    """
    hrefs: set[str] = set()
    accts = {bot_acct} if bot_acct else set()
    usernames = {bot_acct.partition("@")[0]} if bot_acct else set()
    entries: Sequence[object] = mentions  # hostile data may hold anything
    for mention in entries:
        if not isinstance(mention, Mapping):
            continue
        url, acct, username = mention.get("url"), mention.get("acct"), mention.get("username")
        if isinstance(url, str) and url:
            hrefs.add(url)
        if isinstance(acct, str) and acct:
            accts.add(acct)
        if (bot_account_id is not None and str(mention.get("id")) == bot_account_id
                and isinstance(username, str) and username):
            usernames.add(username)
    alternatives = [re.escape(a) for a in sorted(accts, key=len, reverse=True)]
    alternatives += [re.escape(u) + r"@[^\s@]+" for u in sorted(usernames) if u]
    if not alternatives:
        return frozenset(hrefs), None
    pattern = re.compile(r"(?<![\w@/])@(?:" + "|".join(alternatives) + r")(?![\w@])",
                         re.IGNORECASE)
    return frozenset(hrefs), pattern


def _cut(html: str, limit: int) -> str:
    """Return the first ``limit`` characters of ``html``, without a tag cut in half."""
    if len(html) <= limit:
        return html
    head = html[:limit]
    opened = head.rfind("<")
    return head[:opened] if opened > head.rfind(">") else head


def extract_text(content_html: str, spoiler_text: str, bot_acct: str,
                 bot_account_id: str | None, mentions: Sequence[Mapping[str, Any]]) -> str:
    """Return the command text of a mention: plain text without any mention.

    ``content_html`` is the status ``content``, ``spoiler_text`` its content warning
    (read only when the content has no text left), ``mentions`` the status
    ``mentions`` (links to them are dropped whatever their markup), ``bot_acct`` and
    ``bot_account_id`` the bot's own account. Never raises on hostile input: at most
    ``defaults.COMMAND_INPUT_MAX`` characters of each are read.
    """
    limit = defaults.COMMAND_INPUT_MAX
    hrefs, accts = _known_mentions(bot_acct, bot_account_id, mentions)
    parser = _TextParser(hrefs)
    parser.feed(_cut(content_html, limit))
    text = _plain(parser.text(), accts)
    if not text:
        text = _plain(spoiler_text[:limit], accts)
    return text


def _folded(word: str) -> str:
    """Return ``word`` NFKC-normalised, case-folded, without invisible or trailing punctuation."""
    folded = unicodedata.normalize("NFKC", _remove_invisible(word)).casefold()
    while folded and unicodedata.category(folded[-1]).startswith("P"):
        folded = folded[:-1]
    return folded


def _command_word(word: str) -> str | None:
    """Return the canonical command word written as ``word``, or None if it is none."""
    folded = _folded(word)
    if _COMMAND_WORD.fullmatch(folded) and folded in COMMANDS:
        return folded
    return None


def parse(text: str) -> Command:
    """Return the command in ``text`` (from ``extract_text``); empty text is ``help``.

    Raises ``UnknownCommand`` for a word the bot does not know and ``CommandError``
    for arguments that do not fit (a missing text, a bad duration, words after a
    command that takes none). Arguments of ``maintenance`` are checked here as far
    as they can be without the clock; ``parse_maintenance`` does the rest.
    """
    raw = text[:defaults.COMMAND_INPUT_MAX]
    words = raw.split(maxsplit=1)
    if not words:
        return Command("help", "", raw)
    name = _command_word(words[0])
    if name is None:
        raise UnknownCommand(words[0])
    args = words[1].strip() if len(words) > 1 else ""
    if name in STRICT_NO_ARGS and args:
        raise CommandError(f"\u201c{name}\u201d takes nothing after it. Write: {USAGE[name]}")
    if name in TEXT_REQUIRED and not args:
        raise CommandError(f"\u201c{name}\u201d needs a text. Write: {USAGE[name]}")
    if name == "silence":
        parse_silence(args)
    elif name == "maintenance":
        _split_maintenance(args)
    return Command(name, args, raw)


def parse_duration(text: str) -> float:
    """Return the seconds in ``30m``, ``2h``, ``1d`` (as ``bot.config.parse_duration``).

    Fullwidth digits and letters are read as ASCII. Raises ``CommandError`` for
    anything else and for zero.
    """
    try:
        seconds = _config.parse_duration(unicodedata.normalize("NFKC", text))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if seconds <= 0:
        raise CommandError(f"a duration must be longer than zero, got {text!r}")
    return seconds


def _bounded_duration(text: str, maximum: float, what: str) -> float:
    seconds = parse_duration(text)
    if seconds > maximum:
        raise CommandError(f"a {what} lasts at most {_config_duration(maximum)}, got {text!r}")
    return seconds


def _config_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_silence(args: str) -> Silence:
    """Return the duration and component of ``silence <duration> [component]``.

    The duration is at most ``defaults.SILENCE_MAX``; the component is one word of
    a component name or pattern (``memory``, ``queue:push``, ``queue:*``), lower
    case. Whether such a component exists is for the caller to say.
    """
    words = args.split()
    if not 1 <= len(words) <= 2:
        raise CommandError(f"Write: {USAGE['silence']}")
    seconds = _bounded_duration(words[0], defaults.SILENCE_MAX, "silence")
    component = None
    if len(words) == 2:
        component = unicodedata.normalize("NFKC", words[1]).casefold()
        if not _COMPONENT.fullmatch(component):
            raise CommandError(f"not a component: {words[1][:64]!r}. Write: {USAGE['silence']}")
    return Silence(seconds, component)


def _split_maintenance(args: str) -> tuple[str, float, str]:
    """Return the start word, the duration and the text of ``maintenance`` arguments."""
    words = args.split(maxsplit=2)
    if len(words) < 3:
        raise CommandError(f"Write: {USAGE['maintenance']}")
    start, duration, text = words
    _start_form(start)
    return start, _bounded_duration(duration, defaults.MAINTENANCE_MAX, "maintenance"), text


def _start_form(word: str) -> str:
    """Return how ``word`` gives a start: ``now``, ``relative``, ``clock`` or ``iso``."""
    normal = unicodedata.normalize("NFKC", word)
    if normal.casefold() == "now":
        return "now"
    if normal.startswith("+"):
        parse_duration(normal[1:])
        return "relative"
    if _CLOCK.fullmatch(normal):
        return "clock"
    _iso(normal, zoneinfo.ZoneInfo("UTC"))
    return "iso"


def _iso(text: str, zone: zoneinfo.ZoneInfo) -> float:
    # Python 3.10's fromisoformat does not read a trailing Z.
    iso = text[:-1] + "+00:00" if text[-1:] in {"Z", "z"} else text
    try:
        moment = datetime.fromisoformat(iso)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise CommandError(f"not a start time: {text[:40]!r} ({_START_HELP})") from None


def parse_maintenance(args: str, now: float, tz: str) -> Maintenance:
    """Return the start, duration and text of ``maintenance <start> <duration> <text>``.

    The start is ``now``; ``+30m`` (from now); ``22:00`` (the next 22:00 in the time
    zone ``tz``, or today's if it began at most ``defaults.MAINTENANCE_START_GRACE``
    ago; a clock time skipped by a DST change falls as PEP 495 says, one hour
    later); or an ISO 8601 time such as ``2026-12-01T02:00Z`` (without an offset it
    is in ``tz``). It may lie at most the grace in the past and at most
    ``defaults.MAINTENANCE_AHEAD_MAX`` ahead. The duration is at most
    ``defaults.MAINTENANCE_MAX``; the text is required. User errors raise
    ``CommandError``; an unknown ``tz`` is a bug of the caller (config checks it).
    """
    start_word, duration, text = _split_maintenance(args)
    zone = zoneinfo.ZoneInfo(tz)
    grace = defaults.MAINTENANCE_START_GRACE
    word = unicodedata.normalize("NFKC", start_word)
    clock = _CLOCK.fullmatch(word)
    if word.casefold() == "now":
        start = now
    elif word.startswith("+"):
        start = now + parse_duration(word[1:])
    elif clock is not None:
        day = datetime.fromtimestamp(now, zone).date()
        at = time(int(clock.group(1)), int(clock.group(2)))
        start = datetime.combine(day, at, tzinfo=zone).timestamp()
        if start < now - grace:
            start = datetime.combine(day + timedelta(days=1), at, tzinfo=zone).timestamp()
    else:
        start = _iso(word, zone)
    if start < now - grace:
        raise CommandError(f"that start is in the past: {start_word[:40]!r} ({_START_HELP})")
    if start > now + defaults.MAINTENANCE_AHEAD_MAX:
        raise CommandError(f"that start is more than "
                           f"{_config_duration(defaults.MAINTENANCE_AHEAD_MAX)} ahead: "
                           f"{start_word[:40]!r}")
    return Maintenance(start, duration, text)


# --- Identity and permission ---


class Role(enum.Enum):
    """Who sent a command, as far as commands care."""

    DENIED = "denied"
    MEMBER = "member"
    ADMIN = "admin"


@dataclass(frozen=True)
class Admin:
    """A configured admin: the acct as configured and the account ID it resolved to."""

    acct: str
    account_id: str


@dataclass(frozen=True)
class Sender:
    """Who sent a mention (the notification's ``account``) and its ``status.visibility``."""

    account_id: str
    acct: str
    bot: bool
    visibility: str


def sender_from_notification(notification: Mapping[str, Any]) -> Sender:
    """Return the sender of a mention notification; ``ValueError`` when a field is missing.

    IDs are read as strings (Mastodon.py may give integers). A sender whose ``bot``
    is anything but ``false`` counts as a bot.
    """
    try:
        account = notification["account"]
        status = notification["status"]
        return Sender(account_id=_account_id(account["id"]), acct=_text(account["acct"]),
                      bot=account.get("bot") is not False,
                      visibility=_text(status["visibility"]))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed mention notification: {exc!r:.80}") from None


def _account_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"account id must be a string, got {type(value).__name__}")
    text = str(value)
    if not text or text != text.strip():
        raise TypeError(f"account id must not be empty or padded, got {text[:40]!r}")
    return text


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {type(value).__name__}")
    return value


def _acct(acct: object, local_domain: str | None) -> tuple[str, str | None]:
    """Return (username, domain or None for local) of an acct; raise if malformed."""
    text = _text(acct)
    username, at, domain = text.partition("@")
    if not username or any(c.isspace() for c in text) or (at and (not domain or "@" in domain)):
        raise ValueError(f"malformed acct {text[:80]!r}")
    if not at:
        return username, None
    domain = domain.lower()
    if local_domain is not None and domain == local_domain.lower():
        return username, None
    return username, domain


def role_of(sender: Sender, admins: Sequence[Admin], *,
            local_domain: str | None = None) -> tuple[Role, str]:
    """Return the sender's role and why.

    ADMIN only when some admin has the same account ID and the same full acct
    (username exact, domain case-insensitive; ``local_domain`` names this server,
    so that ``alice@local.example`` is the local ``alice``). Bot accounts and
    malformed senders are DENIED, and so is everyone when anything raises while
    checking (an admin entry included): the check fails closed.
    """
    try:
        if sender.bot is not False:
            return Role.DENIED, "bot account"
        sender_id = _account_id(sender.account_id)
        sender_acct = _acct(sender.acct, local_domain)
        same_id: Admin | None = None
        same_acct: Admin | None = None
        for admin in admins:
            admin_id = _account_id(admin.account_id)
            admin_acct = _acct(admin.acct, local_domain)
            if admin_id == sender_id and admin_acct == sender_acct:
                return Role.ADMIN, f"admin {admin.acct} (id {admin_id})"
            if admin_id == sender_id:
                same_id = admin
            elif admin_acct == sender_acct:
                same_acct = admin
        if same_id is not None:
            return Role.MEMBER, (f"account id {sender_id} is admin {same_id.acct}'s but the "
                                 f"acct is {sender.acct}")
        if same_acct is not None:
            return Role.MEMBER, (f"acct {sender.acct} is admin {same_acct.acct}'s but the "
                                 f"account id {sender_id} is not")
        return Role.MEMBER, "not an admin"
    except Exception as exc:  # the ACL fails closed, whatever went wrong
        return Role.DENIED, f"error while checking: {exc!r:.120}"


def effective_role(role: Role, visibility: str, *,
                   admin_visibilities: Iterable[str] = defaults.ADMIN_VISIBILITIES) -> Role:
    """Return ``role``, except that an admin outside ``admin_visibilities`` acts as a member.

    Use it to pick what a public command answers: an admin's ``status`` in a
    public mention gets the member answer, not the numbers.
    """
    if role is Role.ADMIN and visibility not in frozenset(admin_visibilities):
        return Role.MEMBER
    return role


def authorize(command: Command, role: Role, visibility: str, *,
              public_commands: Iterable[str] = PUBLIC_COMMANDS,
              admin_visibilities: Iterable[str] = defaults.ADMIN_VISIBILITIES,
              confirm_enabled: bool = False) -> tuple[bool, str]:
    """Return whether ``role`` may run ``command`` sent with ``visibility``, and why.

    Members may run ``public_commands`` (only those also in ``PUBLIC_COMMANDS``
    count); admins may run everything, admin-only commands only in a visibility in
    ``admin_visibilities``. ``confirm``/``discard`` need ``confirm_enabled``. A
    refusal's reason is polite enough to be the reply. Any error denies.
    """
    try:
        name = command.name
        public = frozenset(public_commands) & PUBLIC_COMMANDS
        if role is Role.DENIED or not isinstance(role, Role):
            return False, "sender denied"
        if name not in COMMANDS:
            return False, "unknown command"
        if name in CONFIRM_COMMANDS and not confirm_enabled:
            return False, (f"\u201c{name}\u201d is only used when new incidents wait for "
                           f"an admin's confirmation, and they don't here.")
        if name in public:
            return True, "public command"
        if role is not Role.ADMIN:
            return False, f"Sorry, only the admins of this server can use \u201c{name}\u201d."
        if visibility not in frozenset(admin_visibilities):
            return False, (f"Please send admin commands like \u201c{name}\u201d as a direct "
                           f"message; I did not run this one.")
        return True, "admin command"
    except Exception as exc:  # the ACL fails closed, whatever went wrong
        return False, f"error while checking: {exc!r:.120}"


def help_text(role: Role, *, public_commands: Iterable[str] = PUBLIC_COMMANDS,
              confirm_enabled: bool = False) -> str:
    """Return the help reply for ``role`` (use ``effective_role``): short, under 500 characters."""
    if role is Role.ADMIN:
        return ADMIN_HELP + (CONFIRM_HELP if confirm_enabled else "")
    public = frozenset(public_commands) & PUBLIC_COMMANDS
    listed = [MEMBER_COMMAND_TEXT[name] for name in ("status", "help") if name in public]
    commands = (MEMBER_COMMANDS_HELP.format(list=", ".join(listed)) if listed
                else MEMBER_NO_COMMANDS)
    return MEMBER_HELP.format(commands=commands)
