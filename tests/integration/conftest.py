"""Fixtures that start real servers on free loopback ports."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import RedisServer

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
