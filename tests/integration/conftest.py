"""Fixtures that start real servers on free loopback ports."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mastodon_mock import MastodonMock, missing
from tests.integration.servers import (
    NODE_EXPORTER,
    NodeExporter,
    PostgresServer,
    RedisServer,
    postgres_bin,
)

REQUIRE = os.environ.get("STATUSBOT_REQUIRE_INTEGRATION") == "1"
"""Set by CI: a missing prerequisite fails the run instead of skipping."""


def need(reason: str | None) -> None:
    """Skip (or, under CI, fail) when ``reason`` says something is missing."""
    if reason is None:
        return
    if REQUIRE:
        pytest.fail(f"integration prerequisite missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free loopback port."""
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def node_exporter(tmp_path: Path) -> Iterator[NodeExporter]:
    """Debian's real prometheus-node-exporter on a free loopback port."""
    need(None if os.access(NODE_EXPORTER, os.X_OK)
         else f"{NODE_EXPORTER} is not installed (apt install prometheus-node-exporter)")
    server = NodeExporter(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real PostgreSQL (Debian's newest installed) on a free loopback port, for a module."""
    need(None if postgres_bin() is not None
         else "no PostgreSQL server in /usr/lib/postgresql (apt install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        need("psycopg is not installed (pip install -e '.[test]')")
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    yield server
    server.remove()


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MastodonMock]:
    """A mastodon-mock server shared by a module's tests."""
    need(missing())
    server = MastodonMock(tmp_path_factory.mktemp("mastodon-mock"))
    yield server
    server.stop()


@pytest.fixture
def server(mock: MastodonMock) -> Iterator[MastodonMock]:
    """The shared server, with no fault rule left over."""
    mock.clear_faults()
    yield mock
    mock.clear_faults()
