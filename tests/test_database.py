"""The database connections part of the capacity advice (issue 10): config, reading, advice."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from bot.advice import HIDDEN_APPLICATION, Database, Policy, advise, database_lines, render
from bot.collect.database import (
    NOT_INSTALLED,
    DatabaseReader,
    fold_applications,
    read_connections,
    read_database,
)
from bot.config import ConfigError, PostgresConfig, Secret, load_config
from tests.test_advice import inputs


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None,
         env_file: str | None = None) -> Any:
    if env_file is not None:
        (tmp_path / ".env.production").write_text(env_file)
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path, environ=environ or {}, need_token=False)


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env_file", "expected"),
    [
        pytest.param("", None, None, id="nothing"),
        pytest.param("[postgres]\nhost = 'db.internal'\nuser = 'statusbot_ro'\n", None,
                     PostgresConfig("db.internal", user="statusbot_ro"), id="own-keys"),
        pytest.param("[redis]\nmastodon_env_file = '.env.production'\n",
                     "REDIS_HOST=localhost\nDB_HOST=/var/run/postgresql\nDB_USER=mastodon\n"
                     "DB_NAME=mastodon_production\nDB_PASS=pw\nDB_PORT=5432\n",
                     "env", id="env-file"),
        pytest.param("[redis]\nmastodon_env_file = '.env.production'\n",
                     "REDIS_HOST=localhost\n", None, id="env-file-without-db"),
        pytest.param("[redis]\nmastodon_env_file = '.env.production'\n"
                     "[postgres]\nenabled = false\n",
                     "DB_HOST=db\n", None, id="disabled"),
        pytest.param("[postgres]\nhost = '127.0.0.1'\nport = 6432\n", None,
                     PostgresConfig("127.0.0.1", port=6432, pgbouncer=True), id="pgbouncer-port"),
        pytest.param("[postgres]\nhost = '127.0.0.1'\nport = 6432\npgbouncer = false\n", None,
                     PostgresConfig("127.0.0.1", port=6432), id="pgbouncer-said-no"),
        pytest.param("[postgres]\nhost = '/var/run/postgresql'\nconnect_timeout = 2\n", None,
                     PostgresConfig("/var/run/postgresql", timeout=2.0), id="socket"),
    ],
)
def test_postgres_config(tmp_path: Path, text: str, env_file: str | None,
                         expected: PostgresConfig | str | None) -> None:
    """[postgres] keys, or Mastodon's DB_* from the env file, give the connection."""
    config = load(tmp_path, text, env_file=env_file)
    if expected == "env":
        assert config.postgres == PostgresConfig(
            "/var/run/postgresql", 5432, "mastodon_production", "mastodon", Secret("pw"),
            source=str(tmp_path / ".env.production"))
        assert any("Mastodon's own database user" in w for w in config.warnings)
        assert all("pw" not in w.split("'") for w in config.warnings)
    else:
        assert config.postgres == expected


def test_own_user_never_gets_mastodons_password(tmp_path: Path) -> None:
    """Host and database from DB_*, a read-only user of our own: DB_PASS is not sent."""
    config = load(tmp_path, "[redis]\nmastodon_env_file = '.env.production'\n"
                            "[postgres]\nuser = 'statusbot_ro'\npassword_env = 'PG_PW'\n",
                  environ={"PG_PW": "ro-pw"},
                  env_file="DB_HOST=db1\nDB_PORT=5433\nDB_USER=mastodon\nDB_PASS=app-pw\n")
    assert config.postgres == PostgresConfig(
        "db1", 5433, "mastodon_production", "statusbot_ro", Secret("ro-pw"),
        source=str(tmp_path / ".env.production"))
    assert not config.warnings
    bare = load(tmp_path, "[redis]\nmastodon_env_file = '.env.production'\n"
                          "[postgres]\nuser = 'statusbot_ro'\n",
                env_file="DB_HOST=db1\nDB_PASS=app-pw\n")
    assert bare.postgres.password is None


def test_database_url(tmp_path: Path) -> None:
    """DATABASE_URL wins over DB_*, its parts percent-decoded."""
    config = load(tmp_path, "[postgres]\nmastodon_env_file = '.env.production'\n",
                  env_file="DB_HOST=ignored\n"
                           "DATABASE_URL=postgresql://app:p%40ss@10.0.0.9:6432/masto\n")
    pg = config.postgres
    assert (pg.host, pg.port, pg.dbname, pg.user, pg.password, pg.pgbouncer) == (
        "10.0.0.9", 6432, "masto", "app", Secret("p@ss"), True)
    assert "p@ss" not in repr(pg) and "p%40ss" not in repr(pg)


@pytest.mark.parametrize(
    ("text", "env_file", "expected"),
    [
        pytest.param("[postgres]\nhost = 'db'\nport = 0\n", None,
                     "postgres.port: must be from 1 to 65535, got 0", id="port-zero"),
        pytest.param("[postgres]\nhost = 'db'\nport = 99999999999999999999\n", None,
                     "postgres.port: must be", id="port-huge"),
        pytest.param("[postgres]\nhost = 'db'\nport = nan\n", None,
                     "postgres.port: must be a whole number from 1 to 65535, got float nan",
                     id="port-nan"),
        pytest.param("[postgres]\nhost = 'db'\nconnect_timeout = nan\n", None,
                     "postgres.connect_timeout: must be from 1s to 1m, got nan",
                     id="timeout-nan"),
        pytest.param("[postgres]\nhost = 'db'\nconnect_timeout = 1e300\n", None,
                     "postgres.connect_timeout: must be from 1s to 1m", id="timeout-huge"),
        pytest.param("[postgres]\nhost = 'db sslmode=disable'\n", None,
                     "postgres.host: must be a host name, an address or a socket directory",
                     id="host-injected"),
        pytest.param("[postgres]\nhost = 'db'\ndbname = \"x' options='-c\"\n", None,
                     "postgres.dbname: must be 1 to 63 letters", id="dbname-injected"),
        pytest.param("[postgres]\nhost = 'db'\nuser = 'a b'\n", None,
                     "postgres.user: must be 1 to 63 letters", id="user-blank"),
        pytest.param("[postgres]\nhost = 'db'\npasword_file = 'x'\n", None,
                     "postgres.pasword_file: unknown key", id="unknown-key"),
        pytest.param("[postgres]\nconnect_timeout = 3\n", None,
                     "postgres.host: is required (or DB_* in mastodon_env_file)", id="no-host"),
        pytest.param("[postgres]\nhost = 'db'\npassword_env = 'NOPE'\n", None,
                     "postgres.password_env: the environment variable NOPE is not set",
                     id="password-env-unset"),
        pytest.param("[postgres]\nmastodon_env_file = '.env.production'\n",
                     "DB_HOST=db\nDB_PORT=5432x\nDB_PASS=hunter2\n",
                     "DB_PORT must be a port number from 1 to 65535, got '5432x'",
                     id="env-port"),
        pytest.param("[postgres]\nmastodon_env_file = '.env.production'\n",
                     "DATABASE_URL=mysql://u:hunter2@h/db\n",
                     "DATABASE_URL: must start with postgres:// or postgresql://",
                     id="env-url-scheme"),
        pytest.param("[postgres]\nmastodon_env_file = '.env.production'\n",
                     "DB_PASS=${UNSET_SECRET}\nDB_HOST=db\n",
                     "DB_PASS uses ${UNSET_SECRET}, which neither the file nor the environment "
                     "sets", id="env-unset-reference"),
        pytest.param("[postgres]\nmastodon_env_file = 'missing.env'\n", None,
                     "postgres.mastodon_env_file: cannot read", id="env-missing"),
    ],
)
def test_bad_postgres_config(tmp_path: Path, text: str, env_file: str | None,
                             expected: str) -> None:
    """Bad values are named clearly, and no message shows the password."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env_file=env_file)
    message = str(caught.value)
    assert expected in message
    assert "hunter2" not in message


# --- reading, with a fake connection ---------------------------------------------------------


class FakeCursor:
    def __init__(self, replies: dict[str, Any], log: list[tuple[str, Any]]) -> None:
        self.replies, self.log, self.last = replies, log, ""

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, params: Any = None) -> None:
        self.log.append((sql, params))
        self.last = sql

    def fetchone(self) -> Any:
        return self.replies["settings"]

    def fetchall(self) -> Any:
        return self.replies["activity"]


class FakeConnection:
    def __init__(self, settings: Any, activity: Any) -> None:
        self.log: list[tuple[str, Any]] = []
        self.replies = {"settings": settings, "activity": activity}
        self.closed = self.rolled_back = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.replies, self.log)

    def rollback(self) -> None:
        self.rolled_back = True

    def close(self) -> None:
        self.closed = True


CONFIG = PostgresConfig("db", user="statusbot_ro", password=Secret("pw-xyz"), timeout=2.0)


@pytest.mark.parametrize(
    ("settings", "activity", "expected"),
    [
        pytest.param(("100", "3", None), [("", 40), ("sidekiq", 12), ("psql", 1)],
                     Database(100, 53, False, 3, (("", 40), ("sidekiq", 12), ("psql", 1))),
                     id="pg15"),
        pytest.param(("200", "3", "5"), [("", 10)], Database(200, 10, False, 8, (("", 10),)),
                     id="pg16-reserved"),
        pytest.param(("100", "3", None), [(HIDDEN_APPLICATION, 7)],
                     Database(100, 7, False, 3, ((HIDDEN_APPLICATION, 7),)), id="hidden"),
        pytest.param(("lots", "3", None), [], Database.failed(
            "unexpected settings from PostgreSQL: ('lots', '3', None)"), id="garbage"),
    ],
)
def test_read_connections(settings: Any, activity: Any, expected: Database) -> None:
    """The settings and the grouped pg_stat_activity become one Database value."""
    connection = FakeConnection(settings, activity)
    assert read_connections(connection) == expected  # type: ignore[arg-type]
    assert connection.rolled_back
    assert connection.log[0] == ("SELECT set_config('statement_timeout', %s, true)", ("5000ms",))


def test_read_database_errors_are_one_line_without_password() -> None:
    """A failing connect or query is a one-line reason, the password masked; the link closed."""
    def refuse(config: PostgresConfig) -> Any:
        raise OSError("connection failed:\n  password pw-xyz rejected")

    reading = read_database(CONFIG, refuse)
    assert reading.error == "statusbot_ro@db:5432/mastodon_production: connection failed: " \
                            "password *** rejected"
    broken = FakeConnection(None, [])
    broken.cursor = lambda: (_ for _ in ()).throw(RuntimeError("server closed"))  # type: ignore[method-assign]
    assert read_database(CONFIG, lambda c: broken).error == (
        "statusbot_ro@db:5432/mastodon_production: server closed")
    assert broken.closed


def test_without_psycopg_says_how_to_install() -> None:
    """No driver: the advice is told to install statusbot[postgres]."""
    def missing(config: PostgresConfig) -> Any:
        raise ImportError("No module named 'psycopg'")

    assert read_database(CONFIG, missing).error == NOT_INSTALLED


def test_fold_applications() -> None:
    """Most first; beyond the limit one "(other)" with the rest; long names cut."""
    groups = [("a", 1), ("b", 5), ("c", 2), ("x" * 100, 3), ("a", 1)]
    assert fold_applications(groups, 2) == (("b", 5), ("x" * 64, 3), ("(other)", 4))


def test_reader_keeps_a_reading_a_minute() -> None:
    """Once a minute at most, failures too."""
    now = [0.0]
    calls: list[float] = []

    def read(config: PostgresConfig) -> Database:
        calls.append(now[0])
        return Database(100, len(calls))

    reader = DatabaseReader(CONFIG, clock=lambda: now[0], read=read)
    assert reader.read().in_use == 1
    now[0] = 59.9
    assert reader.read().in_use == 1
    now[0] = 60.0
    assert reader.read().in_use == 2
    assert calls == [0.0, 60.0]


def test_reader_gives_up_after_its_timeout_and_starts_no_second_thread() -> None:
    """A hanging read: failed after the timeout; while it hangs, no new thread."""
    release = threading.Event()
    now = [0.0]

    def hang(config: PostgresConfig) -> Database:
        release.wait(10)
        return Database(100, 1)

    config = PostgresConfig("db", timeout=0.2)
    reader = DatabaseReader(config, clock=lambda: now[0], read=hang)
    assert reader.read().error == "db:5432 did not answer within 0.2 s"
    now[0] = 61.0
    assert reader.read().error == "the previous reading has still not answered"
    assert reader.reads == 1
    release.set()


def test_reader_turns_an_exception_into_a_reason() -> None:
    """A reader function that raises still gives a reading."""
    def boom(config: PostgresConfig) -> Database:
        raise ValueError("bad")

    assert DatabaseReader(CONFIG, read=boom).read().error == (
        "statusbot_ro@db:5432/mastodon_production: bad")


# --- advice arithmetic and wording ------------------------------------------------------------


@pytest.mark.parametrize(
    ("database", "margin", "free", "threads"),
    [
        pytest.param(Database(100, 50, reserved=3), 5, 42, 9, id="room"),
        pytest.param(Database(100, 88, reserved=3), 5, 4, 4, id="capped"),
        pytest.param(Database(100, 88, reserved=3), 0, 9, 9, id="no-margin"),
        pytest.param(Database(100, 92, reserved=3), 5, 0, None, id="none-free"),
        pytest.param(Database(100, 200, reserved=3), 5, 0, None, id="over-full"),
        pytest.param(Database(100, 88), 5, 4, 4, id="reserved-assumed"),
    ],
)
def test_threads_capped_by_free_connections(database: Database, margin: int, free: int,
                                            threads: int | None) -> None:
    """Free = max - reserved - in use - margin; a change never adds more threads than that."""
    advice = advise(inputs(database=database), Policy(db_margin=margin))
    assert advice.db_free == free
    change = advice.behind[0].change
    assert (None if change is None else change.threads) == threads


def test_database_line_names_applications_and_pgbouncer() -> None:
    """The admin line gives the figures by application; PgBouncer gets its own sentence."""
    database = Database(100, 52, True, 3, (("", 40), ("sidekiq", 11), (HIDDEN_APPLICATION, 1)))
    advice = advise(inputs(database=database))
    assert database_lines(advice) == [
        "Database connections: 52 of max_connections 100 in use (no application_name "
        "(Mastodon's web and Sidekiq) 40, sidekiq 11, hidden from statusbot's role: grant it "
        "pg_monitor 1), 3 reserved; 40 free for more Sidekiq threads, keeping 5 spare.",
        "The bot reaches PostgreSQL through PgBouncer: its pool, not max_connections, may be "
        "the limit (statusbot does not read SHOW POOLS)."]
    assert database_lines(advise(inputs(database=Database.failed("timed out")))) == [
        "Database connections not checked: timed out."]
    assert "Database connections not checked: no [postgres] or DB_* in .env.production." in \
        render(advise(inputs()))


def test_json_of_a_failed_reading() -> None:
    """A failed reading is an object with the error and null numbers."""
    doc = advise(inputs(database=Database.failed("refused"))).to_json()
    assert doc["database"] == {"error": "refused", "max_connections": None, "reserved": None,
                               "in_use": None, "margin": None, "free": None, "pgbouncer": False,
                               "by_application": []}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5, 10**15, "12", None],
                         ids=["nan", "inf", "negative", "huge", "text", "none"])
def test_hostile_figures_and_names_never_reach_the_text(bad: Any) -> None:
    """Mentions, hashtags, control characters and bad numbers from PostgreSQL stay harmless."""
    apps = (("@someone@evil.example", bad), ("#tag \u202e https://x.example", 3),
            ("x" * 10_000, 2))
    database = Database(bad, bad, False, bad, apps)
    advice = advise(inputs(database=database))
    text = " ".join(database_lines(advice)) + " ".join(render(advice))
    assert "@someone" not in text and "#tag" not in text and "\u202e" not in text
    assert "x" * 100 not in text
    assert "nan" not in text.lower().split() and "inf" not in text.lower().split()
    json.dumps(advice.to_json(), allow_nan=False)  # every number finite
