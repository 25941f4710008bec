"""The bot's durable state in one SQLite file (WAL): outbox, named state, handled mentions, audit.

This is the only module that touches SQLite. Every method is one committed
transaction, so a crash (even SIGKILL) between two calls leaves a consistent
file: a post is in the outbox before any network call, its first attempt is
recorded before the request, and its status id right after the answer.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import defaults
from bot.model import INSTANCE, Post, PostKind

SCHEMA_VERSION = 7
"""Version of the tables below; a file written by a newer bot is refused.

1: state, outbox. 2: notifications (handled mention ids), audit. 3: samples
(raw, 5-minute, daily) and closed incidents (``bot/history.py``). 4: media
attachments of outbox rows (files, uploaded media ids, processing state). 5:
audit rows know whether an admin sent the mention and how many mentions a row
stands for (``Store.prune_audit``), with the indexes that keep pruning cheap. 6: each
outbox row names its destination (``Post.destination``: empty for the instance, every
row before; ``fallback:<host>`` for a fallback account), with an index per destination.
7: each host's memory (``host_names``, ``host_samples_raw``, ``host_samples_1h``,
``host_samples_1d``; see ``HOST_SAMPLE_TABLES``).
"""

SAMPLE_METRICS = (
    "memory_used_percent", "memory_used_bytes", "memory_total_bytes", "swap_used_percent",
    "cpu_percent", "load_1m", "disk_used_percent", "queue_latency_s", "enqueued", "busy",
    "concurrency", "live_processes", "redis_ok", "incident_open",
)
"""The sampled metrics, in column order (``bot.history.Sample`` has a field for each).

Columns of the sample tables: ``samples_raw`` has one column per metric;
``samples_5m`` and ``samples_1d`` have ``<metric>_min``, ``_mean``, ``_max`` and
``_n`` (how many samples had a value), plus ``samples`` (samples in the bucket);
a bucket's ``at`` is its start (UTC-aligned).
"""

SAMPLE_TABLES = {"raw": "samples_raw", "5m": "samples_5m", "1d": "samples_1d"}
"""Sample table of each resolution."""

HOST_SAMPLE_TABLES = {"raw": "host_samples_raw", "1h": "host_samples_1h",
                      "1d": "host_samples_1d"}
"""Per-host memory sample table of each resolution (schema 7).

``host_samples_raw``: ``(host, at, used, total)``, bytes, one row per host and
tick. ``host_samples_1h`` and ``host_samples_1d``: ``(host, at, samples,
used_min, used_mean, used_max, total_max)``; ``at`` is the bucket's start.
``host`` is the id of a ``host_names`` row (``id``, ``name``). A host that
could not be read has no row for that tick (unknown, not zero).
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    visibility TEXT NOT NULL,
    spoiler_text TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT '',
    parent_key TEXT,
    pin INTEGER NOT NULL DEFAULT 0,
    unpin_key TEXT,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'failed', 'folded')),
    status_id TEXT,
    in_reply_to_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    first_attempt_at REAL,
    last_attempt_at REAL,
    last_error TEXT,
    error_status INTEGER,
    sent_at REAL,
    finished_at REAL,
    folded_into TEXT,
    pin_state TEXT CHECK (pin_state IN ('pending', 'done', 'failed')),
    unpin_state TEXT CHECK (unpin_state IN ('pending', 'done', 'failed'))
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, next_attempt_at, seq);
CREATE INDEX IF NOT EXISTS outbox_folded_into ON outbox (folded_into);
"""


_MIGRATIONS: dict[int, str] = {
    2: """
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    handled_at REAL NOT NULL,
    account_id TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL,
    replies INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notifications_handled_at ON notifications (handled_at);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    account_id TEXT NOT NULL,
    acct TEXT NOT NULL,
    command TEXT NOT NULL,
    args TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL,
    notification_id TEXT
);
""",
    3: """
CREATE TABLE IF NOT EXISTS samples_raw (
    at REAL PRIMARY KEY,
    {raw}
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples_5m (
    at INTEGER PRIMARY KEY,
    samples INTEGER NOT NULL,
    {buckets}
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples_1d (
    at INTEGER PRIMARY KEY,
    samples INTEGER NOT NULL,
    {buckets}
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents_closed (
    id TEXT PRIMARY KEY,
    opened_at REAL NOT NULL,
    resolved_at REAL NOT NULL,
    components TEXT NOT NULL,
    peak TEXT NOT NULL,
    manual INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS incidents_closed_resolved_at ON incidents_closed (resolved_at);
""".format(
        raw=",\n    ".join(f"{m} REAL" for m in SAMPLE_METRICS),
        buckets=",\n    ".join(f"{m}_{part} {kind}" for m in SAMPLE_METRICS
                              for part, kind in (("min", "REAL"), ("mean", "REAL"),
                                                 ("max", "REAL"), ("n", "INTEGER NOT NULL"))),
    ),
    # media: JSON [[path, description], ...] as queued; media_ids: JSON list of the ids
    # uploaded so far (index i is the upload of media[i]); media_ready: every upload was
    # seen processed; media_since: when the first file was uploaded.
    4: """
ALTER TABLE outbox ADD COLUMN media TEXT NOT NULL DEFAULT '[]';
ALTER TABLE outbox ADD COLUMN media_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE outbox ADD COLUMN media_ready INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN media_since REAL
""",
    # admin: 1 for an admin's entry (kept one row each), 0 for another sender's (collapsed,
    # capped). A row from before cannot tell; only rate-limited drops are surely not an
    # admin's, but every "dropped:" row is what a flood leaves, so those count as others.
    # count/last_at: how many mentions a collapsed row stands for, and the last one's time.
    5: """
ALTER TABLE audit ADD COLUMN admin INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit ADD COLUMN last_at REAL;
UPDATE audit SET admin = 0 WHERE result LIKE 'dropped:%';
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS audit_admin ON audit (admin);
CREATE INDEX IF NOT EXISTS audit_account ON audit (account_id, admin, at)
""",
    # destination: where the row goes ('' the instance; every row before this version was
    # for the instance). Each destination has an outbox of its own that reads only its rows.
    6: """
ALTER TABLE outbox ADD COLUMN destination TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS outbox_destination ON outbox (destination, state, next_attempt_at, seq)
""",
    # host: a host_names id (names are kept once; a name without samples left goes at
    # compaction). used/total: bytes of memory in use and provisioned on that host.
    7: """
CREATE TABLE IF NOT EXISTS host_names (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS host_samples_raw (
    host INTEGER NOT NULL,
    at REAL NOT NULL,
    used REAL NOT NULL,
    total REAL NOT NULL,
    PRIMARY KEY (host, at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS host_samples_1h (
    host INTEGER NOT NULL,
    at INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    used_min REAL NOT NULL,
    used_mean REAL NOT NULL,
    used_max REAL NOT NULL,
    total_max REAL NOT NULL,
    PRIMARY KEY (host, at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS host_samples_1d (
    host INTEGER NOT NULL,
    at INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    used_min REAL NOT NULL,
    used_mean REAL NOT NULL,
    used_max REAL NOT NULL,
    total_max REAL NOT NULL,
    PRIMARY KEY (host, at)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS host_samples_raw_at ON host_samples_raw (at);
CREATE INDEX IF NOT EXISTS host_samples_1h_at ON host_samples_1h (at);
CREATE INDEX IF NOT EXISTS host_samples_1d_at ON host_samples_1d (at)
""",
}
"""Statements that bring a file from the previous version to the key's version."""

_ADD_COLUMN = re.compile(r"\s*ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(\w+)", re.IGNORECASE)

MENTIONS_CURSOR = "mentions.cursor"
"""Name of the state holding the mentions backfill cursor: ``{"min_id": "<id>"}``."""


CREATED_STATE = "store.created"
"""Named state: when this file was created (``{"at": epoch, "new": bool}``; ``new`` False
when the file predates this record)."""

ADOPT_STATE = "adopt.pending"
"""Named state of a new file: the bot account's pinned notices are still to be looked at
(``bot/adopt.py`` deletes it once they were)."""


class StoreError(Exception):
    """The state file cannot be used (written by a newer version, or corrupt)."""


class ItemState(enum.Enum):
    """Where an outbox row is in its life."""

    PENDING = "pending"
    """Not yet published; delivery will (re)try it."""
    SENT = "sent"
    """Published: ``status_id`` is set (a pin or unpin may still be due)."""
    FAILED = "failed"
    """The instance refused it for good (a 4xx); reported once."""
    FOLDED = "folded"
    """Replaced by a catch-up post (``folded_into``), or expired unsent when that is None."""


ThreadRow = tuple[str, str, str, float, str, "str | None", "str | None"]
"""``(key, kind, text, created_at, state, status_id, folded_into)`` of one outbox row."""


class StepState(enum.Enum):
    """State of the pin or unpin that follows a sent post."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbox row: the post as composed, and how its delivery went.

    ``first_attempt_at`` is written before the first request leaves, so an
    item that has it but no ``status_id`` may or may not exist on the server
    (the process died, or the answer was lost); re-sending it with the same
    idempotency key is safe only within the idempotency window.
    """

    seq: int
    post: Post
    state: ItemState
    status_id: str | None = None
    in_reply_to_id: str | None = None
    attempts: int = 0
    next_attempt_at: float = 0.0
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    last_error: str | None = None
    error_status: int | None = None
    sent_at: float | None = None
    finished_at: float | None = None
    folded_into: str | None = None
    pin_state: StepState | None = None
    unpin_state: StepState | None = None
    media_ids: tuple[str, ...] = ()
    """Ids of the files of ``post.media`` uploaded so far, in order (never uploaded twice)."""
    media_ready: bool = False
    """Every uploaded file was seen processed by the instance (the post may go out)."""
    media_since: float | None = None
    """When the first file was uploaded (bounds the wait for processing)."""

    @property
    def key(self) -> str:
        """The post's idempotency key (the row's identity)."""
        return self.post.key

    @property
    def error(self) -> str:
        """The last error, or an empty string (for log lines and admin messages)."""
        return self.last_error or ""


@dataclass(frozen=True, slots=True)
class HandledNotification:
    """A notification the bot has handled (claimed): when, from whom, with what result."""

    id: str
    handled_at: float
    account_id: str
    result: str
    replies: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action: who (account id and acct), what (command, args), when, the result.

    ``seq`` is None until the entry is stored; ``notification_id`` names the
    mention that carried the command, when there was one. ``admin`` is False
    for an entry about another sender's mention (a command refused, a mention
    dropped unrun): those are collapsed and capped (``Store.prune_audit``).
    ``count`` is how many mentions a stored row stands for (more than 1: a
    collapsed row; its fields are the first mention's, ``last_at`` the time
    of the last one).
    """

    at: float
    account_id: str
    acct: str
    command: str
    args: str
    result: str
    notification_id: str | None = None
    seq: int | None = None
    admin: bool = True
    count: int = 1
    last_at: float | None = None


_COLUMNS = (
    "seq, key, kind, text, visibility, spoiler_text, language, parent_key, pin, unpin_key, "
    "created_at, state, status_id, in_reply_to_id, attempts, next_attempt_at, "
    "first_attempt_at, last_attempt_at, last_error, error_status, sent_at, finished_at, "
    "folded_into, pin_state, unpin_state, media, media_ids, media_ready, media_since, destination"
)


def damage_of(error: BaseException) -> str | None:
    """Return SQLite's words when ``error`` says the state file is damaged, else None."""
    if not isinstance(error, sqlite3.DatabaseError):
        return None
    name = str(getattr(error, "sqlite_errorname", ""))
    text = _one_line(error)
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or any(
            words in text for words in ("malformed", "not a database")):
        return text
    return None


def _one_line(error: object) -> str:
    return " ".join(str(error).split())


def _item(row: sqlite3.Row) -> OutboxItem:
    post = Post(
        key=row["key"], kind=PostKind(row["kind"]), text=row["text"],
        visibility=row["visibility"], created_at=row["created_at"],
        spoiler_text=row["spoiler_text"], language=row["language"],
        parent_key=row["parent_key"], pin=bool(row["pin"]), unpin_key=row["unpin_key"],
        media=tuple((str(path), str(description))
                    for path, description in json.loads(row["media"] or "[]")),
        destination=row["destination"],
    )
    return OutboxItem(
        seq=row["seq"], post=post, state=ItemState(row["state"]), status_id=row["status_id"],
        in_reply_to_id=row["in_reply_to_id"], attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"], first_attempt_at=row["first_attempt_at"],
        last_attempt_at=row["last_attempt_at"], last_error=row["last_error"],
        error_status=row["error_status"], sent_at=row["sent_at"],
        finished_at=row["finished_at"], folded_into=row["folded_into"],
        pin_state=StepState(row["pin_state"]) if row["pin_state"] else None,
        unpin_state=StepState(row["unpin_state"]) if row["unpin_state"] else None,
        media_ids=tuple(str(i) for i in json.loads(row["media_ids"] or "[]")),
        media_ready=bool(row["media_ready"]), media_since=row["media_since"],
    )


class Store:
    """The SQLite state file: outbox rows, named JSON state, thread ids.

    ``path`` may be ``":memory:"`` for tests. Directories are created, WAL is
    switched on for files, and the schema version is checked. One connection,
    guarded by a lock, so the tick loop and a stream thread may share it.
    ``clock`` dates what the store records by itself (when the file began,
    when a named state changed): the bot passes its own, so an injected clock
    dates the file too.
    """

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        self._identity: tuple[int, int] | None = None
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       cached_statements=defaults.STATE_STATEMENTS,
                                       check_same_thread=False, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open it: {_one_line(exc)}") from exc
        self._lock = threading.RLock()
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA busy_timeout = 10000")
            if self.path != ":memory:":
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{self.path}: cannot switch to WAL (journal_mode={mode})")
                # The history grows the file for a day; SQLite's default 2 MB page cache
                # would grow the bot's memory with it. The OS caches the file anyway.
                self._db.execute(f"PRAGMA cache_size = -{defaults.STATE_CACHE_KIB}")
                self._check_pages()
            # FULL: a committed "attempted" or "sent" survives power loss too; writes are rare.
            self._db.execute("PRAGMA synchronous = FULL")
            self._migrate()
            self._identity = self._stat()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if damage_of(exc) is not None:  # by name on 3.11+, by SQLite's words on 3.10
                raise StoreError(self._damaged(f"SQLite: {_one_line(exc)}")) from exc
            raise StoreError(f"{self.path}: {_one_line(exc)}") from exc
        except OSError as exc:
            self._db.close()
            raise StoreError(f"{self.path}: cannot open it: {_one_line(exc)}") from exc
        except StoreError:
            self._db.close()
            raise

    def _check_pages(self) -> None:
        """Refuse a file with damaged pages now, rather than fail every tick later.

        ``quick_check`` reads every page (milliseconds for a state file of a
        few MB); a damaged file is left as it is for the admin to look at.
        """
        rows = [str(r[0]) for r in self._db.execute("PRAGMA quick_check(3)").fetchall()]
        if rows != ["ok"]:
            raise StoreError(self._damaged(f"SQLite quick_check: {'; '.join(rows)}"))

    def _damaged(self, detail: str) -> str:
        return (f"{self.path} is damaged ({_one_line(detail)}); move it aside to start with "
                f"an empty state (the bot then picks up its pinned notice)")

    def _stat(self) -> tuple[int, int] | None:
        if self.path == ":memory:":
            return None
        info = os.stat(self.path)
        return info.st_dev, info.st_ino

    def file_problem(self) -> str | None:
        """Return what happened to the open file's path, or None when it is still this file.

        One ``stat`` (cheap enough for every tick): the path is gone (the file
        or its directory was deleted) or holds another file (device and inode
        differ). The open file keeps working either way, but a restart would
        not find it.
        """
        if self._identity is None:
            return None
        try:
            identity = self._stat()
        except FileNotFoundError:
            return f"{self.path} was deleted"
        except OSError as exc:
            return f"{self.path} cannot be checked: {_one_line(exc)}"
        if identity != self._identity:
            return f"{self.path} was replaced by another file"
        return None

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as db:
            # One statement at a time: executescript() would commit the transaction first.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0]
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version}; this statusbot "
                                 f"understands up to {SCHEMA_VERSION} (upgrade statusbot)")
            # A new file gets version 1 above, then every migration, like an old file.
            for target in range(int(version or 1) + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip() and not self._has_column(db, statement):
                        db.execute(statement)
            if version is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                # A new file: whatever the account shows (a pinned notice) is unknown here.
                self._put(db, ADOPT_STATE, {"since": self._clock()})
            else:
                # Always a write, so a file the bot may not write fails here, not at the
                # first tick (SQLite opens such a file read-only without a word).
                db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            if self._get(db, CREATED_STATE) is None:
                self._put(db, CREATED_STATE, {"at": self._clock(), "new": version is None})

    @staticmethod
    def _has_column(db: sqlite3.Connection, statement: str) -> bool:
        """Return True when ``statement`` adds a column the table has already.

        ``ALTER TABLE … ADD COLUMN`` has no ``IF NOT EXISTS``; this makes a
        migration safe on a file whose version was set back by hand.
        """
        match = _ADD_COLUMN.match(statement)
        if match is None:
            return False
        table, column = match.groups()
        return any(row[1] == column
                   for row in db.execute(f"PRAGMA table_info({table})"))

    def close(self) -> None:
        """Close the file (a WAL checkpoint happens on the last close)."""
        with self._lock:
            self._db.close()

    # --- named JSON state ---------------------------------------------------

    def get_state(self, name: str) -> dict[str, Any] | None:
        """Return the JSON object stored under ``name``, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def put_state(self, name: str, value: dict[str, Any]) -> None:
        """Store ``value`` (a JSON object) under ``name``, replacing what was there."""
        with self._transaction() as db:
            self._put(db, name, value)

    @staticmethod
    def _get(db: sqlite3.Connection, name: str) -> dict[str, Any] | None:
        row = db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _put(self, db: sqlite3.Connection, name: str, value: dict[str, Any]) -> None:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        db.execute(
            "INSERT INTO state (name, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at", (name, text, self._clock()))

    def delete_state(self, name: str) -> None:
        """Forget the state stored under ``name`` (no error when there is none)."""
        with self._transaction() as db:
            db.execute("DELETE FROM state WHERE name = ?", (name,))

    # --- outbox: writing ------------------------------------------------------

    @staticmethod
    def _insert(db: sqlite3.Connection, posts: Iterable[Post]) -> int:
        new = 0
        for post in posts:
            cursor = db.execute(
                "INSERT OR IGNORE INTO outbox (key, kind, text, visibility, spoiler_text, "
                "language, parent_key, pin, unpin_key, created_at, pin_state, unpin_state, "
                "media, destination) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (post.key, post.kind.value, post.text, post.visibility, post.spoiler_text,
                 post.language, post.parent_key, int(post.pin), post.unpin_key, post.created_at,
                 StepState.PENDING.value if post.pin else None,
                 StepState.PENDING.value if post.unpin_key else None,
                 json.dumps([[path, description] for path, description in post.media]),
                 post.destination))
            new += cursor.rowcount
        return new

    def enqueue(self, posts: Iterable[Post]) -> int:
        """Add posts to the outbox; a key already there is left as it is.

        One transaction for all of them. Returns how many were new.
        """
        with self._transaction() as db:
            return self._insert(db, posts)

    def commit_tick(self, posts: Iterable[Post], states: dict[str, dict[str, Any]]) -> int:
        """Queue ``posts`` and store the named ``states`` in one transaction.

        What a tick decided (incident state) and what it will say about it
        (posts) are committed together, so a crash never keeps one without
        the other. Returns how many posts were new.
        """
        with self._transaction() as db:
            for name, value in states.items():
                self._put(db, name, value)
            return self._insert(db, posts)

    def mark_attempt(self, key: str, at: float) -> None:
        """Record that a request for ``key`` is about to leave (before it does)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?, "
                "first_attempt_at = coalesce(first_attempt_at, ?) WHERE key = ?", (at, at, key))

    def mark_sent(self, key: str, status_id: str, at: float,
                  in_reply_to_id: str | None = None) -> None:
        """Record that ``key`` was published as ``status_id``."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'sent', status_id = ?, in_reply_to_id = ?, "
                "sent_at = ?, finished_at = ?, last_error = NULL, error_status = NULL "
                "WHERE key = ?", (status_id, in_reply_to_id, at, at, key))

    def mark_retry(self, key: str, error: str, next_attempt_at: float,
                   status: int | None = None) -> None:
        """Record a retryable failure of ``key``; it is due again at ``next_attempt_at``."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET last_error = ?, error_status = ?, next_attempt_at = ? "
                "WHERE key = ?", (error, status, next_attempt_at, key))

    def forget_attempt(self, key: str) -> None:
        """Forget that ``key`` was attempted: its only attempt was refused (nothing published).

        So a post held back by a refusal that proves it was not created (401,
        404, 429) is not treated as possibly published when it is late.
        """
        with self._transaction() as db:
            db.execute("UPDATE outbox SET first_attempt_at = NULL WHERE key = ? "
                       "AND state = 'pending'", (key,))

    def add_media_id(self, key: str, media_id: str, at: float) -> tuple[str, ...]:
        """Record that the next file of ``key`` was uploaded as ``media_id``; return all ids.

        Committed right after the upload's answer, so a retry or a restart
        uploads only the files that have no id yet.
        """
        with self._transaction() as db:
            row = db.execute("SELECT media_ids FROM outbox WHERE key = ?", (key,)).fetchone()
            if row is None:
                return ()
            ids = [str(i) for i in json.loads(row[0] or "[]")]
            ids.append(str(media_id))
            db.execute("UPDATE outbox SET media_ids = ?, media_ready = 0, "
                       "media_since = coalesce(media_since, ?) WHERE key = ?",
                       (json.dumps(ids), at, key))
            return tuple(ids)

    def mark_media_ready(self, key: str, ready: bool = True) -> None:
        """Record whether every uploaded file of ``key`` is processed (False: poll again)."""
        with self._transaction() as db:
            db.execute("UPDATE outbox SET media_ready = ? WHERE key = ?", (int(ready), key))

    def reset_media(self, key: str) -> None:
        """Forget the uploads of ``key`` (the instance lost them): upload every file again."""
        with self._transaction() as db:
            db.execute("UPDATE outbox SET media_ids = '[]', media_ready = 0, media_since = NULL "
                       "WHERE key = ?", (key,))

    def mark_failed(self, key: str, error: str, status: int | None, at: float,
                    notices: Sequence[Post] = ()) -> bool:
        """Record that the instance refused ``key`` for good; enqueue ``notices`` with it.

        Returns True when this call made the item fail (False: it was not pending),
        so a failure is reported once even if this is called twice.
        """
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?, error_status = ?, "
                "finished_at = ?, pin_state = CASE WHEN pin_state IS NULL THEN NULL "
                "ELSE 'failed' END, unpin_state = CASE WHEN unpin_state IS NULL THEN NULL "
                "ELSE 'failed' END WHERE key = ? AND state = 'pending'",
                (error, status, at, key))
            if cursor.rowcount == 0:
                return False
            self._insert(db, notices)
            return True

    def fold(self, keys: Sequence[str], into: Post | None, at: float, reason: str) -> int:
        """Replace the pending items ``keys`` by the post ``into`` (None: expire them).

        The catch-up post is inserted and the items marked 'folded' in one
        transaction. A folded item's unpin stays due (a folded resolution still
        unpins its opening notice). Returns how many items were folded.
        """
        with self._transaction() as db:
            if into is not None:
                self._insert(db, [into])
            folded = 0
            for key in keys:
                folded += db.execute(
                    "UPDATE outbox SET state = 'folded', folded_into = ?, last_error = ?, "
                    "finished_at = ?, pin_state = CASE WHEN pin_state IS NULL THEN NULL "
                    "ELSE 'failed' END WHERE key = ? AND state = 'pending'",
                    (into.key if into is not None else None, reason, at, key)).rowcount
            return folded

    def supersede(self, pairs: Sequence[tuple[str, str]], at: float) -> list[str]:
        """Mark each pending, never attempted item ``key`` of ``(key, by)`` folded into ``by``.

        A post that never left cannot exist on the server, so dropping it in
        favour of a later post of the same thread never loses a published post
        nor publishes one twice. One transaction; returns the keys marked.
        """
        done: list[str] = []
        with self._transaction() as db:
            for key, by in pairs:
                if db.execute(
                        "UPDATE outbox SET state = 'folded', folded_into = ?, last_error = ?, "
                        "finished_at = ?, pin_state = CASE WHEN pin_state IS NULL THEN NULL "
                        "ELSE 'failed' END WHERE key = ? AND state = 'pending' "
                        "AND first_attempt_at IS NULL",
                        (by, f"superseded by {by}", at, key)).rowcount:
                    done.append(key)
        return done

    def requeue_failed(self, keys: Sequence[str] | None = None,
                       failed_since: float | None = None,
                       destination: str | None = None) -> list[str]:
        """Make failed items pending again (all, or ``keys``, or those failed since a time).

        For posts refused because of a wrong configuration (an instance URL
        with a path). A refused post was never published, so its first
        attempt is forgotten: it is sent (or, when stale, folded) like a new
        one. Its pin and unpin are due again. ``destination`` limits it to
        that destination's rows (None: every destination). Returns the keys re-queued.
        """
        where = "state = 'failed'"
        args: list[Any] = []
        if destination is not None:
            where += " AND destination = ?"
            args.append(destination)
        if keys is not None:
            if not keys:
                return []
            where += f" AND key IN ({', '.join('?' for _ in keys)})"
            args += list(keys)
        if failed_since is not None:
            where += " AND finished_at >= ?"
            args.append(failed_since)
        with self._transaction() as db:
            found = [str(row[0]) for row in db.execute(
                f"SELECT key FROM outbox WHERE {where} ORDER BY seq", args)]  # noqa: S608
            db.executemany(
                "UPDATE outbox SET state = 'pending', next_attempt_at = 0, "
                "first_attempt_at = NULL, finished_at = NULL, "
                "pin_state = CASE WHEN pin THEN 'pending' ELSE NULL END, "
                "unpin_state = CASE WHEN unpin_key IS NOT NULL THEN 'pending' ELSE NULL END "
                "WHERE key = ? AND state = 'failed'", [(key,) for key in found])
        return found

    def make_due(self, destination: str = INSTANCE) -> int:
        """Make the pending items of ``destination`` due now (a pause ended); return how many."""
        with self._transaction() as db:
            return db.execute("UPDATE outbox SET next_attempt_at = 0 WHERE destination = ? "
                              "AND state = 'pending' AND next_attempt_at > 0",
                              (destination,)).rowcount

    def last_sent_in_thread(self, parent_key: str) -> OutboxItem | None:
        """Return the newest sent reply to ``parent_key`` (the thread's latest post), or None."""
        items = self._select("state = 'sent' AND parent_key = ? "
                             "AND seq = (SELECT max(seq) FROM outbox WHERE state = 'sent' "
                             "AND parent_key = ?)", (parent_key, parent_key))
        return items[0] if items else None

    def mark_pin(self, key: str, state: StepState, error: str | None = None) -> None:
        """Record the outcome of pinning the status of ``key``."""
        with self._transaction() as db:
            db.execute("UPDATE outbox SET pin_state = ?, last_error = coalesce(?, last_error) "
                       "WHERE key = ?", (state.value, error, key))

    def mark_unpin(self, key: str, state: StepState, error: str | None = None) -> None:
        """Record the outcome of the unpin that follows ``key`` (of its ``unpin_key``)."""
        with self._transaction() as db:
            db.execute("UPDATE outbox SET unpin_state = ?, last_error = coalesce(?, last_error) "
                       "WHERE key = ?", (state.value, error, key))

    def forget_unsent(self, keys: Sequence[str]) -> int:
        """Delete the pending rows ``keys`` (never sent, as far as this bot knows); return how many.

        For a standby whose unsent posts are another bot's to make (``Bot``):
        unlike a folded row, a forgotten key counts as never queued, so the
        incident it belonged to can adopt the leader's notice under it.
        """
        with self._transaction() as db:
            return sum(db.execute("DELETE FROM outbox WHERE key = ? AND state = 'pending'",
                                  (key,)).rowcount for key in keys)

    def prune(self, before: float) -> int:
        """Delete sent, failed and folded rows finished before ``before``; return how many.

        Rows that a kept row still refers to (as parent, unpin target or
        catch-up) are kept, so thread ids stay resolvable.
        """
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND finished_at < ? "
                "AND (pin_state IS NULL OR pin_state != 'pending') "
                "AND (unpin_state IS NULL OR unpin_state != 'pending') "
                "AND key NOT IN (SELECT parent_key FROM outbox WHERE parent_key IS NOT NULL "
                "AND (state = 'pending' OR finished_at >= ?)) "
                "AND key NOT IN (SELECT unpin_key FROM outbox WHERE unpin_key IS NOT NULL "
                "AND (state = 'pending' OR finished_at >= ?)) "
                "AND key NOT IN (SELECT folded_into FROM outbox WHERE folded_into IS NOT NULL "
                "AND finished_at >= ?)",
                (before, before, before, before)).rowcount

    # --- outbox: reading ------------------------------------------------------

    def _select(self, where: str, args: Sequence[Any] = (), limit: int | None = None,
                ) -> list[OutboxItem]:
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE {where} ORDER BY seq"  # noqa: S608
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, tuple(args)).fetchall()
        return [_item(row) for row in rows]

    def get(self, key: str) -> OutboxItem | None:
        """Return the outbox row of ``key``, or None."""
        items = self._select("key = ?", (key,))
        return items[0] if items else None

    def due(self, now: float, limit: int, destination: str = INSTANCE) -> list[OutboxItem]:
        """Return up to ``limit`` pending items of ``destination`` due at ``now``, oldest first."""
        return self._select("destination = ? AND state = 'pending' AND next_attempt_at <= ?",
                            (destination, now), limit)

    def pending(self, destination: str = INSTANCE) -> list[OutboxItem]:
        """Return every pending item of ``destination``, in creation order."""
        return self._select("destination = ? AND state = 'pending'", (destination,))

    def followups(self, destination: str = INSTANCE) -> list[OutboxItem]:
        """Return items of ``destination`` whose pin or unpin is still to be done, in order.

        Sent items with a pin or unpin to do, and folded or expired items that
        still owe an unpin.
        """
        return self._select("destination = ? AND ((state = 'sent' AND (pin_state = 'pending' "
                            "OR unpin_state = 'pending')) "
                            "OR (state = 'folded' AND unpin_state = 'pending'))", (destination,))

    def thread_rows(self, prefix: str) -> list[ThreadRow]:
        """Return the rows whose key starts with ``prefix`` (a thread's posts), in creation order.

        Only what the status page shows, as plain tuples (``ThreadRow``), read
        over a range of the key's unique index: cheap enough for every tick
        whatever the outbox holds.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT key, kind, text, created_at, state, status_id, folded_into FROM outbox "
                "WHERE key >= ? AND key < ? ORDER BY seq",
                (prefix, prefix + "\U0010ffff")).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]), float(r[3]), str(r[4]),
                 None if r[5] is None else str(r[5]), None if r[6] is None else str(r[6]))
                for r in rows]

    def folded_into(self, key: str) -> list[OutboxItem]:
        """Return the items that were folded into the catch-up post ``key``."""
        return self._select("state = 'folded' AND folded_into = ?", (key,))

    def items(self, states: Iterable[ItemState] = tuple(ItemState)) -> list[OutboxItem]:
        """Return every row in one of ``states``, in creation order (for tests and reports)."""
        names = [state.value for state in states]
        marks = ", ".join("?" for _ in names)
        return self._select(f"state IN ({marks})", names)

    def status_id(self, key: str) -> str | None:
        """Return the status id of the sent post ``key`` (a thread's parent), or None."""
        with self._lock:
            row = self._db.execute("SELECT status_id FROM outbox WHERE key = ? AND state = 'sent'",
                                   (key,)).fetchone()
        return None if row is None else str(row[0])

    def last_created(self, kind: PostKind) -> float | None:
        """Return when the newest queued post of ``kind`` was composed (any state), or None."""
        with self._lock:
            row = self._db.execute("SELECT max(created_at) FROM outbox WHERE kind = ?",
                                   (kind.value,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def counts(self, destination: str | None = None) -> dict[str, int]:
        """Return how many rows are in each state (every state present, 0 included).

        ``destination`` counts only that destination's rows (None: all of them).
        """
        counts = {state.value: 0 for state in ItemState}
        where, args = ("WHERE destination = ? ", (destination,)) if destination is not None \
            else ("", ())
        with self._lock:
            for row in self._db.execute(
                    f"SELECT state, count(*) FROM outbox {where}GROUP BY state",  # noqa: S608
                    args):
                counts[row[0]] = row[1]
        return counts

    # --- mentions: handled notifications, cursor ------------------------------------

    def is_handled(self, notification_id: str) -> bool:
        """Return True when ``notification_id`` has been claimed (handled) already."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM notifications WHERE id = ?",
                                   (notification_id,)).fetchone()
        return row is not None

    def handled(self, notification_id: str) -> HandledNotification | None:
        """Return how ``notification_id`` was handled, or None when it was not."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, handled_at, account_id, result, replies FROM notifications "
                "WHERE id = ?", (notification_id,)).fetchone()
        return None if row is None else HandledNotification(
            row["id"], row["handled_at"], row["account_id"], row["result"], row["replies"])

    def claim(self, notification_id: str, *, at: float, result: str,
              account_id: str = "") -> bool:
        """Mark ``notification_id`` handled with ``result`` and no reply; True the first time."""
        return self.claim_and_enqueue(notification_id, (), at=at, result=result,
                                      account_id=account_id)

    def claim_and_enqueue(self, notification_id: str, posts: Sequence[Post], *, at: float,
                          result: str, account_id: str = "", audit: Sequence[AuditEntry] = (),
                          states: dict[str, dict[str, Any]] | None = None) -> bool:
        """Claim ``notification_id`` and, only if this call claimed it, queue its reply.

        One transaction: the claim (``INSERT OR IGNORE``), the reply ``posts``,
        the ``audit`` entries and the named ``states`` a command changed. So a
        crash can neither claim a mention without its reply nor answer it twice.
        Returns True when this call claimed it (False: handled before, nothing
        written).
        """
        with self._transaction() as db:
            claimed = db.execute(
                "INSERT OR IGNORE INTO notifications (id, handled_at, account_id, result, "
                "replies) VALUES (?, ?, ?, ?, ?)",
                (notification_id, at, account_id, result,
                 sum(1 for p in posts if p.kind is PostKind.REPLY))).rowcount
            if not claimed:
                return False
            self._insert(db, posts)
            for entry in audit:
                self._add_audit(db, entry)
            for name, value in (states or {}).items():
                self._put(db, name, value)
            return True

    def replied_since(self, since: float) -> list[HandledNotification]:
        """Return the handled notifications answered at or after ``since``, oldest first.

        What the reply limiter needs to remember the recent replies across a restart.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, handled_at, account_id, result, replies FROM notifications "
                "WHERE handled_at >= ? AND replies > 0 ORDER BY handled_at", (since,)).fetchall()
        return [HandledNotification(r["id"], r["handled_at"], r["account_id"], r["result"],
                                    r["replies"]) for r in rows]

    def prune_notifications(self, before: float) -> int:
        """Forget notifications handled before ``before``; return how many."""
        with self._transaction() as db:
            return db.execute("DELETE FROM notifications WHERE handled_at < ?",
                              (before,)).rowcount

    def mentions_cursor(self) -> str | None:
        """Return the backfill's ``min_id``: every mention up to it has been handled."""
        value = (self.get_state(MENTIONS_CURSOR) or {}).get("min_id")
        return str(value) if value is not None else None

    def advance_mentions_cursor(self, notification_id: str) -> str:
        """Move the backfill cursor to ``notification_id`` unless it is further already.

        Ids compare as integers (``"10"`` is after ``"9"``, bigints stay exact);
        the cursor never moves backwards. Returns the cursor after the call.
        """
        if not notification_id.isdigit():
            raise ValueError(f"not a notification id: {notification_id!r}")
        with self._transaction() as db:
            row = db.execute("SELECT value FROM state WHERE name = ?",
                             (MENTIONS_CURSOR,)).fetchone()
            current = json.loads(row[0]).get("min_id") if row is not None else None
            if current is not None and str(current).isdigit() \
                    and int(str(current)) >= int(notification_id):
                return str(current)
            self._put(db, MENTIONS_CURSOR, {"min_id": notification_id})
            return notification_id

    # --- audit ----------------------------------------------------------------------

    @staticmethod
    def _add_audit(db: sqlite3.Connection, entry: AuditEntry,
                   collapse: float = defaults.AUDIT_COLLAPSE_WINDOW) -> int:
        """Store ``entry``; another sender's entry may join a recent row instead.

        A non-admin entry joins the sender's newest row with the same command
        and result begun less than ``collapse`` seconds before (its count goes
        up); so a flood from one account is one row per hour, not one per
        mention. Returns the sequence number of the row written or joined.
        """
        if not entry.admin:
            row = db.execute(
                "SELECT seq FROM audit WHERE account_id = ? AND admin = 0 AND command = ? "
                "AND result = ? AND at > ? ORDER BY at DESC LIMIT 1",
                (entry.account_id, entry.command, entry.result, entry.at - collapse)).fetchone()
            if row is not None:
                db.execute("UPDATE audit SET count = count + ?, last_at = max(coalesce(last_at, "
                           "at), ?) WHERE seq = ?",
                           (max(1, entry.count),
                            entry.at if entry.last_at is None else entry.last_at, row[0]))
                return int(row[0])
        cursor = db.execute(
            "INSERT INTO audit (at, account_id, acct, command, args, result, notification_id, "
            "admin, count, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry.at, entry.account_id, entry.acct, entry.command, entry.args, entry.result,
             entry.notification_id, int(entry.admin), max(1, entry.count), entry.last_at))
        return int(cursor.lastrowid or 0)

    def add_audit(self, entry: AuditEntry) -> int:
        """Append an admin action to the audit log; return its sequence number.

        An entry with ``admin`` False may join a recent row (see ``_add_audit``).
        """
        with self._transaction() as db:
            return self._add_audit(db, entry)

    def audit(self, limit: int = 50) -> list[AuditEntry]:
        """Return the newest ``limit`` audit entries, oldest first (``statusbot audit``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, at, account_id, acct, command, args, result, notification_id, "
                "admin, count, last_at FROM audit ORDER BY seq DESC LIMIT ?",
                (max(0, int(limit)),)).fetchall()
        return [AuditEntry(at=r["at"], account_id=r["account_id"], acct=r["acct"],
                           command=r["command"], args=r["args"], result=r["result"],
                           notification_id=r["notification_id"], seq=r["seq"],
                           admin=bool(r["admin"]), count=r["count"], last_at=r["last_at"])
                for r in reversed(rows)]

    def audit_rows(self) -> tuple[int, int]:
        """Return how many audit rows there are: (admins', other senders')."""
        with self._lock:
            counts = dict(self._db.execute(
                "SELECT admin, count(*) FROM audit GROUP BY admin").fetchall())
        return int(counts.get(1, 0)), int(counts.get(0, 0))

    def prune_audit(self, before: float, max_rows: int = defaults.AUDIT_MAX_ROWS,
                    max_others: int = defaults.AUDIT_MAX_OTHERS) -> int:
        """Bound the audit log; return how many rows went.

        Rows begun before ``before`` go (the retention); then all but the newest
        ``max_others`` rows of other senders (what a flood writes); then all but
        the newest ``max_rows`` rows. With ``max_others`` below ``max_rows``, a
        flood never pushes out the newest ``max_rows - max_others`` admin rows
        of the period. Each step searches an index; a cap walks at most its own
        number of entries back from the newest (``max_others``, ``max_rows``).
        """
        with self._transaction() as db:
            gone = db.execute("DELETE FROM audit WHERE at < ?", (before,)).rowcount
            row = db.execute("SELECT seq FROM audit WHERE admin = 0 ORDER BY seq DESC "
                             "LIMIT 1 OFFSET ?", (max(0, int(max_others)),)).fetchone()
            if row is not None:
                gone += db.execute("DELETE FROM audit WHERE admin = 0 AND seq <= ?",
                                   (row[0],)).rowcount
            # seq only grows: a span no longer than max_rows cannot hold more rows.
            # (Two statements: min and max together would scan an index.)
            low = db.execute("SELECT min(seq) FROM audit").fetchone()[0]
            high = db.execute("SELECT max(seq) FROM audit").fetchone()[0]
            if low is not None and high - low + 1 > max_rows:
                row = db.execute("SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET ?",
                                 (max(0, int(max_rows)),)).fetchone()
                if row is not None:
                    gone += db.execute("DELETE FROM audit WHERE seq <= ?", (row[0],)).rowcount
            return gone

    # --- history: samples, closed incidents (bot/history.py) --------------------------

    def add_samples(self, rows: Iterable[Sequence[float | None]]) -> int:
        """Store raw samples, each ``(at, *values)`` in ``SAMPLE_METRICS`` order.

        A sample at the same ``at`` as a stored one replaces it. Returns how many
        rows were written.
        """
        marks = ", ".join("?" for _ in range(len(SAMPLE_METRICS) + 1))
        with self._transaction() as db:
            return db.executemany(
                f"INSERT OR REPLACE INTO samples_raw (at, {', '.join(SAMPLE_METRICS)}) "  # noqa: S608
                f"VALUES ({marks})", [tuple(row) for row in rows]).rowcount

    def compact_samples(self, raw_before: float, fine_before: float, bucket: int,
                        drop_before: float) -> tuple[int, int, int]:
        """Roll old samples up into coarser rows and delete the oldest daily rows.

        Raw samples before ``raw_before`` become ``bucket``-second rows, those
        before ``fine_before`` daily rows; daily rows before ``drop_before``
        are deleted. One transaction. A bucket that exists already is merged with (min of
        mins, max of maxes, means weighted by their counts), so samples stored
        late are not lost and running it twice changes nothing. The limits
        must be aligned to ``bucket`` and to UTC days. Returns the numbers of
        raw rows, 5-minute rows and daily rows removed.
        """
        with self._transaction() as db:
            db.execute(self._rollup_sql("samples_5m", "samples_raw", f"CAST(at / {int(bucket)} "
                                        f"AS INTEGER) * {int(bucket)}", raw=True), (raw_before,))
            raw = db.execute("DELETE FROM samples_raw WHERE at < ?", (raw_before,)).rowcount
            db.execute(self._rollup_sql("samples_1d", "samples_5m",
                                        "CAST(at / 86400 AS INTEGER) * 86400", raw=False),
                       (fine_before,))
            fine = db.execute("DELETE FROM samples_5m WHERE at < ?", (fine_before,)).rowcount
            daily = db.execute("DELETE FROM samples_1d WHERE at < ?", (drop_before,)).rowcount
            return raw, fine, daily

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def _rollup_sql(target: str, source: str, start: str, *, raw: bool) -> str:
        columns = ["at", "samples"]
        select = [start + " AS b", "count(*)" if raw else "sum(samples)"]
        update = ["samples = samples + excluded.samples"]
        for m in SAMPLE_METRICS:
            columns += [f"{m}_min", f"{m}_mean", f"{m}_max", f"{m}_n"]
            if raw:
                select += [f"min({m})", f"avg({m})", f"max({m})", f"count({m})"]
            else:
                select += [f"min({m}_min)", f"sum({m}_mean * {m}_n) / nullif(sum({m}_n), 0)",
                           f"max({m}_max)", f"sum({m}_n)"]
            update += [
                f"{m}_min = coalesce(min({m}_min, excluded.{m}_min), {m}_min, excluded.{m}_min)",
                f"{m}_max = coalesce(max({m}_max, excluded.{m}_max), {m}_max, excluded.{m}_max)",
                f"{m}_mean = CASE WHEN {m}_n + excluded.{m}_n = 0 THEN NULL ELSE "
                f"(coalesce({m}_mean, 0) * {m}_n + coalesce(excluded.{m}_mean, 0) * "
                f"excluded.{m}_n) / ({m}_n + excluded.{m}_n) END",
                f"{m}_n = {m}_n + excluded.{m}_n",
            ]
        return (f"INSERT INTO {target} ({', '.join(columns)}) "  # noqa: S608
                f"SELECT {', '.join(select)} FROM {source} WHERE at < ? GROUP BY b "
                f"ON CONFLICT (at) DO UPDATE SET {', '.join(update)}")

    def sample_rows(self, resolution: str, metric: str | None, start: float, end: float,
                    ) -> list[tuple[float, float | None, float | None, float | None, int, int]]:
        """Return ``(at, min, mean, max, n, samples)`` rows of one resolution, oldest first.

        ``resolution`` is a key of ``SAMPLE_TABLES``. Raw rows are those with
        ``start <= at < end``; bucket rows those that start before ``end`` and
        after ``start`` minus a day (callers clip). A raw row reads as a bucket
        of one sample. ``metric`` None gives only times and sample counts.
        """
        if resolution not in SAMPLE_TABLES:
            raise ValueError(f"unknown resolution: {resolution!r}")
        if metric is not None and metric not in SAMPLE_METRICS:
            raise ValueError(f"unknown metric: {metric!r}")
        if resolution == "raw":
            value = metric or "NULL"
            columns = f"at, {value}, {value}, {value}, {value} IS NOT NULL, 1"
            low = start
        else:
            columns = (f"at, {metric}_min, {metric}_mean, {metric}_max, {metric}_n, samples"
                       if metric else "at, NULL, NULL, NULL, 0, samples")
            low = start - 86400.0
        sql = (f"SELECT {columns} FROM {SAMPLE_TABLES[resolution]} "  # noqa: S608
               "WHERE at >= ? AND at < ? ORDER BY at")
        with self._lock:
            rows = self._db.execute(sql, (low, end)).fetchall()
        return [(float(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5])) for r in rows]

    def sample_counts(self) -> dict[str, int]:
        """Return how many rows each sample table holds (keys of ``SAMPLE_TABLES``)."""
        with self._lock:
            return {name: int(self._db.execute(
                        f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
                    for name, table in SAMPLE_TABLES.items()}

    # --- history: each host's memory (schema 7) -----------------------------------------

    def add_host_samples(self, at: float, rows: Iterable[tuple[str, float, float]],
                         names_max: int) -> int:
        """Store each host's raw memory sample at ``at``: ``(name, used, total)`` in bytes.

        One transaction. A host seen for the first time gets a ``host_names`` row,
        unless ``names_max`` names are kept already (then its sample is left out:
        the table never outgrows the cap, whatever the hosts report). A sample
        at the same ``at`` as a stored one of that host replaces it. Returns how
        many samples were written.
        """
        written = 0
        with self._transaction() as db:
            for name, used, total in rows:
                row = db.execute("SELECT id FROM host_names WHERE name = ?", (name,)).fetchone()
                if row is None:
                    if db.execute("SELECT count(*) FROM host_names").fetchone()[0] >= names_max:
                        continue
                    host = db.execute("INSERT INTO host_names (name) VALUES (?)",
                                      (name,)).lastrowid
                else:
                    host = row[0]
                db.execute("INSERT OR REPLACE INTO host_samples_raw (host, at, used, total) "
                           "VALUES (?, ?, ?, ?)", (host, at, used, total))
                written += 1
        return written

    def compact_host_samples(self, raw_before: float, fine_before: float, bucket: int,
                             drop_before: float) -> tuple[int, int, int, int]:
        """Roll each host's old samples up, as ``compact_samples`` does for the local ones.

        Raw rows before ``raw_before`` become ``bucket``-second rows, those
        before ``fine_before`` daily rows (merged into a bucket that exists
        already), daily rows before ``drop_before`` are deleted, and so are
        names that have no sample left. Returns the numbers of raw, bucket and
        daily rows and of names removed.
        """
        merge = ("ON CONFLICT (host, at) DO UPDATE SET "
                 "used_min = min(used_min, excluded.used_min), "
                 "used_max = max(used_max, excluded.used_max), "
                 "used_mean = (used_mean * samples + excluded.used_mean * excluded.samples) "
                 "/ (samples + excluded.samples), "
                 "total_max = max(total_max, excluded.total_max), "
                 "samples = samples + excluded.samples")
        columns = "host, at, samples, used_min, used_mean, used_max, total_max"
        step = int(bucket)
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO host_samples_1h ({columns}) "  # noqa: S608
                f"SELECT host, CAST(at / {step} AS INTEGER) * {step} AS b, count(*), "
                "min(used), avg(used), max(used), max(total) FROM host_samples_raw "
                f"WHERE at < ? GROUP BY host, b {merge}", (raw_before,))
            raw = db.execute("DELETE FROM host_samples_raw WHERE at < ?",
                             (raw_before,)).rowcount
            db.execute(
                f"INSERT INTO host_samples_1d ({columns}) "  # noqa: S608
                "SELECT host, CAST(at / 86400 AS INTEGER) * 86400 AS b, sum(samples), "
                "min(used_min), sum(used_mean * samples) / sum(samples), max(used_max), "
                f"max(total_max) FROM host_samples_1h WHERE at < ? GROUP BY host, b {merge}",
                (fine_before,))
            fine = db.execute("DELETE FROM host_samples_1h WHERE at < ?",
                              (fine_before,)).rowcount
            daily = db.execute("DELETE FROM host_samples_1d WHERE at < ?",
                               (drop_before,)).rowcount
            names = db.execute(
                "DELETE FROM host_names WHERE id NOT IN (SELECT host FROM host_samples_raw) "
                "AND id NOT IN (SELECT host FROM host_samples_1h) "
                "AND id NOT IN (SELECT host FROM host_samples_1d)").rowcount
            return raw, fine, daily, names

    def host_sample_rows(self, resolution: str, start: float, end: float,
                         ) -> list[tuple[str, float, float, float, float, float, int]]:
        """Return ``(name, at, used_min, used_mean, used_max, total_max, samples)`` rows.

        ``resolution`` is a key of ``HOST_SAMPLE_TABLES``; rows come by name,
        then oldest first. As with ``sample_rows``, raw rows are those with
        ``start <= at < end`` (a raw row reads as a bucket of one sample) and
        bucket rows those that start before ``end`` and after ``start`` minus
        a day (callers clip).
        """
        if resolution not in HOST_SAMPLE_TABLES:
            raise ValueError(f"unknown resolution: {resolution!r}")
        if resolution == "raw":
            columns = "s.at, s.used, s.used, s.used, s.total, 1"
            low = start
        else:
            columns = "s.at, s.used_min, s.used_mean, s.used_max, s.total_max, s.samples"
            low = start - 86400.0
        sql = (f"SELECT n.name, {columns} FROM {HOST_SAMPLE_TABLES[resolution]} AS s "  # noqa: S608
               "JOIN host_names AS n ON n.id = s.host WHERE s.at >= ? AND s.at < ? "
               "ORDER BY n.name, s.at")
        with self._lock:
            rows = self._db.execute(sql, (low, end)).fetchall()
        return [(str(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]),
                 int(r[6])) for r in rows]

    def host_sample_counts(self) -> dict[str, int]:
        """Return how many rows each per-host table holds (``HOST_SAMPLE_TABLES`` keys, names)."""
        with self._lock:
            counts = {name: int(self._db.execute(
                          f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
                      for name, table in HOST_SAMPLE_TABLES.items()}
            counts["names"] = int(self._db.execute(
                "SELECT count(*) FROM host_names").fetchone()[0])
        return counts

    def disk_usage(self) -> tuple[int, int]:
        """Return the database's size and its free (reusable) part, in bytes (pages used)."""
        with self._lock:
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(size) * int(pages), int(size) * int(free)

    def add_closed_incident(self, incident_id: str, opened_at: float, resolved_at: float,
                            components: Sequence[str], peak: str, manual: bool) -> bool:
        """Remember a resolved incident; True when it was new (an id is stored once)."""
        with self._transaction() as db:
            return db.execute(
                "INSERT OR IGNORE INTO incidents_closed (id, opened_at, resolved_at, "
                "components, peak, manual) VALUES (?, ?, ?, ?, ?, ?)",
                (incident_id, opened_at, resolved_at, json.dumps(list(components)), peak,
                 int(manual))).rowcount > 0

    def closed_incidents(self, start: float, end: float,
                         ) -> list[tuple[str, float, float, list[str], str, bool]]:
        """Return the resolved incidents that overlap ``[start, end)``, oldest first.

        Each as ``(id, opened_at, resolved_at, components, peak, manual)``.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, opened_at, resolved_at, components, peak, manual "
                "FROM incidents_closed WHERE resolved_at > ? AND opened_at < ? "
                "ORDER BY opened_at, id", (start, end)).fetchall()
        return [(str(r[0]), float(r[1]), float(r[2]),
                 [str(c) for c in json.loads(r[3])], str(r[4]), bool(r[5])) for r in rows]

    # --- statuses published before this file existed (bot/adopt.py) -------------------

    def known_status_ids(self, status_ids: Iterable[str]) -> set[str]:
        """Return those of ``status_ids`` that an outbox row was published as."""
        wanted = list(dict.fromkeys(status_ids))
        if not wanted:
            return set()
        marks = ", ".join("?" for _ in wanted)
        with self._lock:
            rows = self._db.execute(
                f"SELECT status_id FROM outbox WHERE status_id IN ({marks})",  # noqa: S608
                wanted).fetchall()
        return {str(r[0]) for r in rows}

    def record_published(self, published: Sequence[tuple[Post, str]], posts: Sequence[Post],
                         at: float, states: dict[str, dict[str, Any] | None]) -> list[str]:
        """Record posts as published already, queue ``posts`` and set ``states``: one transaction.

        Each ``(post, status_id)`` becomes a sent row (its pin done) when its
        key is new or its row is pending and was never tried; a row that was
        tried or sent is left alone (it may exist on the instance). A None in
        ``states`` deletes that state. Returns the keys recorded.
        """
        recorded: list[str] = []
        with self._transaction() as db:
            for post, status_id in published:
                self._insert(db, [post])
                changed = db.execute(
                    "UPDATE outbox SET state = 'sent', status_id = ?, sent_at = ?, "
                    "finished_at = ?, pin_state = CASE WHEN pin = 1 THEN 'done' END "
                    "WHERE key = ? AND state = 'pending' AND first_attempt_at IS NULL "
                    "AND status_id IS NULL", (status_id, at, at, post.key)).rowcount
                if changed:
                    recorded.append(post.key)
            self._insert(db, posts)
            for name, value in states.items():
                if value is None:
                    db.execute("DELETE FROM state WHERE name = ?", (name,))
                else:
                    self._put(db, name, value)
        return recorded
