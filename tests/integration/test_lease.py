"""The standby lease on a real redis-server, under the README's ACL user (bot/lease.py)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.config import AgentConfig, RedisConfig, Secret
from bot.defaults import LEADER_KEY
from bot.lease import Election, RedisLease, Role
from tests.integration.conftest import need
from tests.integration.servers import RedisServer, readme_acl

pytestmark = pytest.mark.integration

PASSWORD = "lease-secret"
READER = ["ACL", "SETUSER", "statusbot", "on", ">reader-secret", "~*", "&*", "-@all",
          "+@read", "+info", "+ping"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    server = RedisServer(tmp_path)
    try:
        admin = server.client()
        admin.execute_command(*readme_acl("statusbot-agent", PASSWORD))  # type: ignore[no-untyped-call]
        admin.execute_command(*READER)  # type: ignore[no-untyped-call]
        yield server
    finally:
        server.stop()


def lease(server: RedisServer, lease_id: str, password: str = PASSWORD) -> RedisLease:
    return RedisLease.connect(RedisConfig(url=server.url, socket_timeout=1),
                              AgentConfig(password=Secret(password)), lease_id)


def test_acquire_renew_expire_under_the_acl_user(server: RedisServer) -> None:
    """SET NX PX, the renew script (EVALSHA after the first EVAL), expiry, holder."""
    a, b = lease(server, "host-a:1:aa"), lease(server, "host-b:2:bb")
    assert a.acquire(300) and not b.acquire(300)
    assert b.holder()[0] == "host-a:1:aa"
    assert a.renew(300) and a.renew(300)  # the second through EVALSHA
    assert not b.renew(300), "b extended a's lease"
    assert server.client().get(LEADER_KEY) == "host-a:1:aa"
    time.sleep(0.4)
    assert b.holder() == (None, None)
    assert not a.renew(300), "a renewed an expired lease"
    assert b.acquire(300) and not a.acquire(300)
    server.client().script_flush()
    assert b.renew(300), "EVAL after NOSCRIPT"


def test_elections_under_the_acl_user(server: RedisServer) -> None:
    """Two elections: one leader; after a release the other leads."""
    a = Election(lease(server, "a:1:aa"), 0.5)
    b = Election(lease(server, "b:1:bb"), 0.5)
    assert (a.step().role, b.step().role) == (Role.LEADER, Role.STANDBY)
    a.release()
    time.sleep(0.01)
    assert b.step().role is Role.LEADER


@pytest.mark.parametrize("value", [
    pytest.param("x" * 1_000_000, id="huge"),
    pytest.param("\x00\xff\x1b[2J", id="binary"),
])
def test_garbage_in_the_key_is_another_holder(server: RedisServer, value: str) -> None:
    """Whatever the key holds, the lease is simply not ours; only a bounded part is read."""
    server.client().set(LEADER_KEY, value, px=60_000)
    mine = lease(server, "a:1:aa")
    holder, remaining = mine.holder()
    assert holder is not None and len(holder) <= 201 and remaining is not None
    assert Election(mine, 0.5).step().role is Role.STANDBY


def test_wrong_type_and_bad_login_hold_no_election(server: RedisServer) -> None:
    """A key of another type, a refused password, a dead server: no election, no crash."""
    admin = server.client()
    admin.rpush(LEADER_KEY, "x")
    election = Election(lease(server, "a:1:aa"), 0.5)
    decision = election.step()
    assert decision.role is Role.STANDBY and decision.reason.startswith("no election")
    admin.delete(LEADER_KEY)
    wrong = Election(lease(server, "a:1:aa", password="wrong"), 0.5)
    assert wrong.step().reason.startswith("no election")
    assert "wrong" not in wrong.step().reason.replace("WRONGPASS", "")
    leader = Election(lease(server, "b:1:bb"), 0.5)
    assert leader.step().role is Role.LEADER
    server.stop()
    assert leader.step().role is Role.LEADER  # Redis gone: the leader keeps going


def test_the_agent_user_writes_only_statusbot_keys(server: RedisServer) -> None:
    """The README ACL user cannot touch other keys; the bot's read-only user cannot write."""
    agent = redis.Redis(host="127.0.0.1", port=server.port, username="statusbot-agent",
                        password=PASSWORD, decode_responses=True)
    with pytest.raises(redis.exceptions.NoPermissionError):
        agent.set("queues", "x")
    with pytest.raises(redis.exceptions.ResponseError, match="can't access"):
        agent.eval("return redis.call('SET', 'queues', 'x')", 0)
    reader = redis.Redis(host="127.0.0.1", port=server.port, username="statusbot",
                         password="reader-secret", decode_responses=True)
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.set(LEADER_KEY, "me", nx=True, px=1000)
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.eval("return 1", 1, LEADER_KEY)
    assert server.client().get(LEADER_KEY) is None
