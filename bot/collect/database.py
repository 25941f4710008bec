"""Read PostgreSQL's connections for the capacity advice (the only module that imports psycopg).

One reading: connect (``application_name`` statusbot, a read-only session),
then in one read-only transaction with a ``statement_timeout``:
``max_connections``, ``superuser_reserved_connections`` (+ ``reserved_connections``
from PostgreSQL 16) and the client connections of ``pg_stat_activity`` per
``application_name`` (the bot's own excluded), then disconnect: the bot never
holds a connection between readings. Mastodon sets ``application_name: ''``
in config/database.yml, so its web (Puma) and Sidekiq connections show as one
unnamed group. Rows the role may not see in full (no ``pg_monitor``) have no
``backend_type``: they are counted as in use, under ``HIDDEN_APPLICATION``.

``DatabaseReader`` runs a reading in a thread and waits at most the configured
timeout, so a hanging database never delays the caller longer; it keeps the
reading for ``defaults.POSTGRES_READ_INTERVAL`` seconds. Every failure becomes
``Database.failed(<one line>)``, never an exception; no message holds the password.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bot import defaults
from bot.advice import HIDDEN_APPLICATION, Database
from bot.config import PostgresConfig

if TYPE_CHECKING:
    import psycopg

APPLICATION_NAME = "statusbot"
"""The ``application_name`` of the bot's own connection (excluded from the counts anyway)."""

NOT_INSTALLED = "psycopg is not installed: install statusbot[postgres]"
"""The reading's error when the optional driver is missing."""

SETTINGS_SQL = ("SELECT current_setting('max_connections'), "
                "current_setting('superuser_reserved_connections'), "
                "current_setting('reserved_connections', true)")
"""The limits; ``reserved_connections`` is NULL before PostgreSQL 16 (missing_ok)."""

ACTIVITY_SQL = ("SELECT CASE WHEN backend_type IS NULL THEN %s "
                "ELSE coalesce(application_name, '') END, count(*) "
                "FROM pg_stat_activity "
                "WHERE (backend_type = 'client backend' OR backend_type IS NULL) "
                "AND pid <> pg_backend_pid() "
                "GROUP BY 1 ORDER BY 2 DESC, 1")
"""Client connections per application_name, most first (at most max_connections rows)."""


def connect(config: PostgresConfig) -> psycopg.Connection[Any]:
    """Open a read-only connection for ``config`` (raises psycopg's errors, ImportError).

    Every transaction starts ``READ ONLY``; without PgBouncer (which refuses
    startup options) the session's ``default_transaction_read_only`` is on too.
    """
    import psycopg

    options: dict[str, Any] = {}
    if not config.pgbouncer:
        options["options"] = "-c default_transaction_read_only=on"
    connection = psycopg.connect(
        host=config.host, port=config.port, dbname=config.dbname, user=config.user,
        password=None if config.password is None else config.password.reveal(),
        connect_timeout=max(2, math.ceil(config.timeout)), application_name=APPLICATION_NAME,
        autocommit=False, **options)
    connection.read_only = True
    return connection


def read_connections(connection: psycopg.Connection[Any], *, pgbouncer: bool = False,
                     timeout: float = defaults.POSTGRES_TIMEOUT,
                     max_applications: int = defaults.POSTGRES_MAX_APPLICATIONS) -> Database:
    """Return the limits and the connections in use, in one read-only transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)",
                       (f"{max(1, round(timeout * 1000))}ms",))
        cursor.execute(SETTINGS_SQL)
        row = cursor.fetchone()
        cursor.execute(ACTIVITY_SQL, (HIDDEN_APPLICATION,))
        groups = cursor.fetchall()
    connection.rollback()  # nothing was written; end the transaction
    if row is None:
        return Database.failed("PostgreSQL returned no settings", pgbouncer=pgbouncer)
    maximum, superuser, reserved = (_whole(value) for value in row)
    if maximum is None or superuser is None:
        return Database.failed(f"unexpected settings from PostgreSQL: {row!r:.80}",
                               pgbouncer=pgbouncer)
    return Database(max_connections=maximum, in_use=sum(_whole(n) or 0 for _, n in groups),
                    pgbouncer=pgbouncer, reserved=superuser + (reserved or 0),
                    by_application=fold_applications(groups, max_applications))


def fold_applications(groups: Iterable[tuple[object, object]],
                      limit: int = defaults.POSTGRES_MAX_APPLICATIONS,
                      ) -> tuple[tuple[str, int], ...]:
    """Return ``(application_name, count)`` most first; beyond ``limit`` names, one "(other)"."""
    counts: dict[str, int] = {}
    for name, count in groups:
        key = str(name or "")[:64]
        counts[key] = counts.get(key, 0) + (_whole(count) or 0)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if len(ordered) > limit:
        rest = sum(count for _, count in ordered[limit:])
        ordered = [*ordered[:limit], ("(other)", rest)]
    return tuple(ordered)


def _whole(value: object) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= 10**7 else None


def read_database(config: PostgresConfig,
                  opener: Callable[[PostgresConfig], Any] | None = None) -> Database:
    """Return one reading for ``config``; a failure is ``Database.failed`` with one line."""
    try:
        connection = (opener or connect)(config)
    except ImportError:
        return Database.failed(NOT_INSTALLED, pgbouncer=config.pgbouncer)
    except Exception as exc:  # any driver error is a reason
        return Database.failed(describe(exc, config), pgbouncer=config.pgbouncer)
    try:
        return read_connections(connection, pgbouncer=config.pgbouncer, timeout=config.timeout)
    except Exception as exc:
        return Database.failed(describe(exc, config), pgbouncer=config.pgbouncer)
    finally:
        with contextlib.suppress(Exception):  # closing a broken connection may fail too
            connection.close()


def describe(exc: BaseException, config: PostgresConfig) -> str:
    """Return one line on what went wrong, naming the server but never the password."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if config.password is not None and config.password.reveal():
        text = text.replace(config.password.reveal(), "***")
    where = f"{config.user}@{config.host}:{config.port}/{config.dbname}"
    return f"{where}: {text}"[:300]


class DatabaseReader:
    """Reads the connections at most once per ``interval``, waiting at most ``timeout``.

    The reading runs in a daemon thread; when it has not answered in time the
    caller gets a failed reading at once and no second thread is started
    until the first has ended (a hanging server costs one thread, not one a
    minute). Readings, failed ones too, are kept ``interval`` seconds.
    """

    def __init__(self, config: PostgresConfig, *,
                 interval: float = defaults.POSTGRES_READ_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 read: Callable[[PostgresConfig], Database] = read_database) -> None:
        self.config = config
        self._interval = interval
        self._clock = clock
        self._read = read
        self._last: tuple[float, Database] | None = None
        self._pending: threading.Thread | None = None
        self.reads = 0
        """How many readings were started (for tests and the bench)."""

    def read(self) -> Database:
        """Return the reading, from the database when the kept one is ``interval`` old."""
        now = self._clock()
        if self._last is not None and 0.0 <= now - self._last[0] < self._interval:
            return self._last[1]
        result = self._fresh()
        self._last = (now, result)
        return result

    def _fresh(self) -> Database:
        pgbouncer = self.config.pgbouncer
        if self._pending is not None and self._pending.is_alive():
            return Database.failed("the previous reading has still not answered",
                                   pgbouncer=pgbouncer)
        box: list[Database] = []

        def run() -> None:
            try:
                box.append(self._read(self.config))
            except Exception as exc:
                box.append(Database.failed(describe(exc, self.config), pgbouncer=pgbouncer))

        self.reads += 1
        thread = threading.Thread(target=run, name="statusbot-postgres", daemon=True)
        thread.start()
        thread.join(self.config.timeout)
        if thread.is_alive():
            self._pending = thread
            return Database.failed(f"{self.config.host}:{self.config.port} did not answer "
                                   f"within {self.config.timeout:g} s", pgbouncer=pgbouncer)
        self._pending = None
        return box[0] if box else Database.failed("the reading ended without a result",
                                                  pgbouncer=pgbouncer)
