"""The database reading against a real PostgreSQL (issue 10): figures, read-only, failures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.advice import HIDDEN_APPLICATION
from bot.collect.database import DatabaseReader, connect, read_database
from bot.config import PostgresConfig, Secret
from tests.integration.servers import PostgresServer

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-RO-pw"


@pytest.fixture(scope="module")
def roles(postgres_server: PostgresServer) -> PostgresServer:
    """A read-only monitoring role (as the README says) and one without pg_monitor."""
    with postgres_server.admin() as admin:
        admin.execute(f"CREATE ROLE statusbot_ro LOGIN PASSWORD '{PASSWORD}'")
        admin.execute("GRANT pg_monitor TO statusbot_ro")
        admin.execute(f"CREATE ROLE plain_ro LOGIN PASSWORD '{PASSWORD}'")
    return postgres_server


def config_for(server: PostgresServer, user: str = "statusbot_ro", password: str = PASSWORD,
               timeout: float = 5.0, port: int | None = None) -> PostgresConfig:
    return PostgresConfig(host="127.0.0.1", port=port or server.port, dbname="postgres",
                          user=user, password=Secret(password), timeout=timeout)


@pytest.fixture
def sidekiq_connections(roles: PostgresServer) -> Iterator[list[Any]]:
    """Six connections named "sidekiq" and two unnamed (as Mastodon's), closed after the test."""
    opened = [roles.admin(application_name="sidekiq") for _ in range(6)]
    opened += [roles.admin(application_name="") for _ in range(2)]
    yield opened
    for connection in opened:
        connection.close()


def test_figures_match_the_server(roles: PostgresServer, sidekiq_connections: list[Any]) -> None:
    """max_connections, reserved and the connections by application_name are the server's."""
    reading = read_database(config_for(roles))
    assert reading.error is None
    assert (reading.max_connections, reading.reserved) == (30, 3)
    apps = dict(reading.by_application)
    assert apps["sidekiq"] == 6 and apps[""] == 2
    with roles.admin() as admin:
        expected = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()[0]
    # the admin's own check connection is one more than the reader saw (its own left out)
    assert reading.in_use == expected - 1
    assert reading.in_use >= 8


def test_without_pg_monitor_the_rows_are_hidden_but_counted(
        roles: PostgresServer, sidekiq_connections: list[Any]) -> None:
    """A role without pg_monitor cannot see others' details: counted as in use, named hidden."""
    reading = read_database(config_for(roles, user="plain_ro"))
    assert reading.error is None
    apps = dict(reading.by_application)
    assert apps.get(HIDDEN_APPLICATION, 0) >= 8
    assert reading.in_use >= 8


def test_a_write_through_the_reader_fails(roles: PostgresServer) -> None:
    """The reader's session is read-only: even a role allowed to write cannot."""
    with roles.admin() as admin:
        admin.execute("GRANT CREATE ON SCHEMA public TO statusbot_ro")
    connection = connect(config_for(roles))
    try:
        import psycopg

        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            connection.execute("CREATE TABLE statusbot_was_here (x int)")
    finally:
        connection.close()


def test_wrong_password_is_one_line_without_the_password(roles: PostgresServer) -> None:
    """A refused login is a one-line reason that never shows the password."""
    reading = read_database(config_for(roles, password="wrong-" + PASSWORD))
    assert reading.error is not None
    assert "password authentication failed" in reading.error
    assert PASSWORD not in reading.error and "\n" not in reading.error


def test_a_stopped_server_is_a_quick_clear_error(tmp_path: Any,
                                                 postgres_server: PostgresServer) -> None:
    """Nothing listening: the reading fails at once with the reason, and the reader keeps it."""
    from bot.demo import free_port

    reader = DatabaseReader(config_for(postgres_server, port=free_port(), timeout=2.0))
    start = time.monotonic()
    reading = reader.read()
    took = time.monotonic() - start
    assert reading.error is not None and "refused" in reading.error.lower()
    assert took < 2.5
    assert reader.read() is reading and reader.reads == 1


def test_a_hanging_server_costs_at_most_the_timeout(postgres_server: PostgresServer) -> None:
    """A stopped (SIGSTOP) server: the reader answers after its timeout, not later."""
    import os
    import signal

    process = postgres_server.process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        reader = DatabaseReader(config_for(postgres_server, timeout=1.0))
        start = time.monotonic()
        reading = reader.read()
        took = time.monotonic() - start
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert reading.error is not None and "did not answer within 1 s" in reading.error
    assert took < 1.5
