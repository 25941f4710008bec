"""The standby lease and election (bot/lease.py), and two bots sharing one account."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import redis

from bot.app import build
from bot.config import ReportsConfig, load_config
from bot.gateway import RetryableError
from bot.lease import (
    ID_MAX,
    Election,
    RedisLease,
    Role,
    new_id,
    shown,
    ttl_for,
)
from bot.loop import Bot, heartbeat_problem, heartbeat_role, write_heartbeat
from bot.model import PostKind, Snapshot
from bot.testing import LeaseBoard, RecordingGateway
from tests.test_loop import snapshot

T0 = 1_796_090_400.0  # 2026-12-01T02:00:00Z
INTERVAL = 30.0


def board_at(t: float = T0) -> tuple[LeaseBoard, list[float]]:
    now = [t]
    return LeaseBoard(lambda: now[0]), now


def test_first_takes_the_lease_second_stands_by() -> None:
    """SET NX: one leader; the other waits exactly as long as the lease has left."""
    board, now = board_at()
    a, b = (Election(board.lease(i), INTERVAL) for i in ("a", "b"))
    first = a.step()
    assert (first.role, first.changed) == (Role.LEADER, True)
    now[0] += 10
    second = b.step()
    assert (second.role, second.changed) == (Role.STANDBY, False)
    assert second.reason == "the lease is held by a"
    assert second.retry_in == pytest.approx(50.0)
    assert a.step().reason == "lease renewed"
    assert board.expires_at == T0 + 10 + 60


@pytest.mark.parametrize(("after", "role"), [
    pytest.param(2 * INTERVAL - 0.001, Role.STANDBY, id="just-before-two-intervals"),
    pytest.param(2 * INTERVAL, Role.LEADER, id="at-two-intervals"),
])
def test_standby_takes_over_at_two_intervals(after: float, role: Role) -> None:
    """The leader's last renewal plus two intervals is the takeover time, not later."""
    board, now = board_at()
    leader, standby = Election(board.lease("a"), INTERVAL), Election(board.lease("b"), INTERVAL)
    leader.step()
    standby.step()
    now[0] = T0 + after  # the leader never ticks again
    decision = standby.step()
    assert decision.role is role
    assert decision.changed is (role is Role.LEADER)


def test_a_leader_that_lost_the_lease_steps_down_at_once() -> None:
    """Someone else holds the key (a long tick let it lapse): stand by this very tick."""
    board, now = board_at()
    a = Election(board.lease("a"), INTERVAL)
    a.step()
    now[0] += 61
    board.hold("b", 60_000)
    decision = a.step()
    assert (decision.role, decision.changed) == (Role.STANDBY, True)
    assert decision.reason == "lease lost to b"


def test_a_lapsed_lease_nobody_took_is_taken_again() -> None:
    """The leader's own lease expired but nobody took it: it keeps leading."""
    board, now = board_at()
    a = Election(board.lease("a"), INTERVAL)
    a.step()
    now[0] += 200
    decision = a.step()
    assert (decision.role, decision.changed) == (Role.LEADER, False)
    assert decision.reason == "the lease had lapsed: taken again"


def test_a_returning_leader_stays_standby() -> None:
    """The old leader comes back with a new id and finds the new leader's lease."""
    board, now = board_at()
    old, standby = Election(board.lease("a:1"), INTERVAL), Election(board.lease("b"), INTERVAL)
    old.step()
    standby.step()
    for step in range(1, 4):  # the old leader is gone; the standby ticks on
        now[0] = T0 + step * INTERVAL
        standby.step()
    assert standby.leading
    back = Election(board.lease("a:2"), INTERVAL)
    for step in range(4, 10):
        now[0] = T0 + step * INTERVAL
        assert standby.step().role is Role.LEADER
        assert back.step().role is Role.STANDBY
    assert board.value == "b"


@pytest.mark.parametrize("fault", ["down", "wrong_type"])
@pytest.mark.parametrize("leading", [True, False], ids=["leader", "standby"])
def test_redis_errors_hold_no_election(fault: str, leading: bool,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """Redis unreachable or a key of another type: each keeps its role; logged once."""
    board, now = board_at()
    a, b = Election(board.lease("a"), INTERVAL), Election(board.lease("b"), INTERVAL)
    a.step()
    b.step()
    me = a if leading else b
    setattr(board, fault, True)
    with caplog.at_level(logging.WARNING, logger="bot.lease"):
        for step in range(1, 6):  # long past the lease's expiry
            now[0] = T0 + step * INTERVAL
            decision = me.step()
            assert (decision.role, decision.changed) == (
                Role.LEADER if leading else Role.STANDBY, False)
            assert decision.reason.startswith("no election")
    assert len([r for r in caplog.records if "cannot be asked" in r.message]) == 1
    setattr(board, fault, False)
    with caplog.at_level(logging.WARNING, logger="bot.lease"):
        me.step()
    assert any("answers again" in r.message for r in caplog.records)


def test_no_election_at_start_means_standby() -> None:
    """A bot that cannot ask at start never starts posting beside an unseen leader."""
    board, _ = board_at()
    board.down = True
    decision = Election(board.lease("a"), INTERVAL).step()
    assert decision.role is Role.STANDBY


@pytest.mark.parametrize("value", [
    pytest.param("x" * 10_000, id="huge"),
    pytest.param("\x1b[31mevil\nline\x00", id="control-characters"),
    pytest.param("", id="empty"),
    pytest.param("a", id="looks-like-a-prefix-of-ours"),
])
def test_foreign_or_garbage_holder_is_just_someone_else(value: str) -> None:
    """Whatever the key holds that is not our id, we stand by; the log line stays one line."""
    board, _ = board_at()
    board.hold(value, 60_000)
    decision = Election(board.lease("a:1:ff"), INTERVAL).step()
    assert decision.role is Role.STANDBY
    assert "\n" not in decision.reason and "\x1b" not in decision.reason
    assert len(decision.reason) < 120


def test_release_lets_the_standby_take_over_at_once() -> None:
    """A polite stop expires our lease; the standby leads at its next tick."""
    board, now = board_at()
    a, b = Election(board.lease("a"), INTERVAL), Election(board.lease("b"), INTERVAL)
    a.step()
    b.step()
    a.release()
    now[0] += 0.01
    assert not a.leading
    assert b.step().role is Role.LEADER
    b.release()  # only our own lease is touched
    board.hold("c", 60_000)
    a.release()
    assert board.value == "c"


@pytest.mark.parametrize(("interval", "intervals"), [
    pytest.param(0.0, 2, id="zero"),
    pytest.param(-1.0, 2, id="negative"),
    pytest.param(float("nan"), 2, id="nan"),
    pytest.param(float("inf"), 2, id="inf"),
    pytest.param(0.01, 2, id="too-short"),
    pytest.param(7201.0, 2, id="too-long"),
    pytest.param(30.0, 0, id="no-intervals"),
    pytest.param(True, 2, id="bool"),
])
def test_bad_ttl_values(interval: float, intervals: int) -> None:
    """The lease's lifetime comes from a sane interval or not at all."""
    with pytest.raises(ValueError, match="lease"):
        ttl_for(interval, intervals)


def test_ttl_is_two_intervals() -> None:
    """Two intervals, in milliseconds."""
    assert (ttl_for(0.5), ttl_for(30.0), ttl_for(3600.0)) == (1000, 60_000, 7_200_000)


@pytest.mark.parametrize("lease_id", [
    pytest.param("", id="empty"),
    pytest.param("a b", id="space"),
    pytest.param("a\nb", id="newline"),
    pytest.param("x" * (ID_MAX + 1), id="too-long"),
])
def test_bad_ids_are_refused(lease_id: str) -> None:
    """An id is printable, without spaces, and short."""
    with pytest.raises(ValueError, match="lease id"):
        RedisLease(redis.Redis(), lease_id)


def test_new_id_is_unique_and_clean() -> None:
    """hostname:pid:random; a hostile hostname is cleaned; two ids never match."""
    first, second = new_id("web 1\n", 42), new_id("web 1\n", 42)
    assert first.startswith("web1:42:") and first != second
    RedisLease(redis.Redis(), first)  # accepted
    assert shown("\x07" + "y" * 100).startswith("?y") and shown("y" * 100).endswith("…")


@pytest.mark.parametrize(("problem", "role", "lines"), [
    pytest.param(None, None, ["1.000"], id="plain"),
    pytest.param("lost", None, ["1.000", "lost"], id="problem"),
    pytest.param(None, "standby", ["1.000", "", "standby"], id="standby"),
    pytest.param("lost", "leader", ["1.000", "lost", "leader"], id="both"),
])
def test_heartbeat_role_line(tmp_path: Path, problem: str | None, role: str | None,
                             lines: list[str]) -> None:
    """The role is the third line; a standby is no problem for the healthcheck."""
    path = tmp_path / "last-tick"
    write_heartbeat(path, 1.0, problem, role)
    assert path.read_text().splitlines() == lines
    assert (heartbeat_problem(path), heartbeat_role(path)) == (problem, role)


# --- two bots, one account ---------------------------------------------------------------------


class Latency:
    """A collector whose push latency the test sets; snapshots carry the shared clock."""

    def __init__(self, now: list[float]) -> None:
        self.now = now
        self.latency = 0.0

    def collect(self) -> Snapshot:
        return snapshot(self.now[0], self.latency)


def make_bot(tmp_path: Path, name: str, gateway: RecordingGateway, board: LeaseBoard,
             now: list[float], collector: Latency, lease_id: str,
             status_every: str = "0") -> Bot:
    """Build a bot as `statusbot run` does with [bot] standby, on the shared lease board."""
    config = tmp_path / f"{name}.toml"
    config.write_text(f"""
[bot]
interval = {INTERVAL}
state_dir = "{tmp_path / name}"
standby = true
[mastodon]
api_base_url = "https://example.social"
access_token_env = "T"
admins = ["alice"]
probe_health = false
[commands]
enabled = false
[posts]
status_every = {status_every}
[health.queue_latency.push]
warning = 60
critical = 300
for = 0
clear = 10
clear_for = 0
""")
    bot = build(load_config(config, environ={"T": "token"}), out=io.StringIO(),
                gateway=gateway, clock=lambda: now[0])
    bot.collector = collector  # type: ignore[assignment]
    bot.reports = None
    assert bot.election is not None and bot.adopt_on_takeover
    bot.election = Election(board.lease(lease_id), INTERVAL)
    return bot


def test_standby_takes_over_the_thread(tmp_path: Path) -> None:
    """Leader posts the notice and dies; the standby resolves in its thread; the old one waits."""
    gateway = RecordingGateway()
    board, now = board_at()
    collector = Latency(now)
    leader = make_bot(tmp_path, "a", gateway, board, now, collector, "a:1")
    standby = make_bot(tmp_path, "b", gateway, board, now, collector, "b:1")
    collector.latency = 400.0
    for step in range(2):
        now[0] = T0 + step * INTERVAL
        leader.tick()
        now[0] += 1
        report = standby.tick()
        assert report.posts == () and report.delivery is None
    assert (leader.role, standby.role) == ("leader", "standby")
    notices = [s for s in gateway.statuses.values() if s.post.kind is PostKind.NOTICE]
    assert len(notices) == 1 and gateway.pinned == [notices[0].id]
    posted = len(gateway.statuses)
    leader.store.close()  # the leader's host dies after its tick at T0 + 30
    now[0] = T0 + INTERVAL + 2 * INTERVAL - 0.5
    standby.tick()
    assert standby.role == "standby" and len(gateway.statuses) == posted
    now[0] = T0 + 3 * INTERVAL  # two intervals after the last renewal
    standby.tick()
    assert standby.role == "leader"
    assert len(gateway.calls_to("pinned_statuses")) == 2  # once per bot that became leader
    collector.latency = 0.0
    now[0] += INTERVAL
    standby.tick()
    top = [s for s in gateway.statuses.values()
           if s.in_reply_to_id is None and s.post.visibility == "public"]
    assert [s.id for s in top] == [notices[0].id], "a second notice"
    replies = [s.post.text for s in gateway.statuses.values()
               if s.in_reply_to_id == notices[0].id]
    assert len([t for t in replies if t.startswith("Resolved")]) == 1, replies
    assert gateway.pinned == []
    texts = [(s.post.spoiler_text, s.post.text) for s in gateway.statuses.values()]
    assert len(texts) == len(set(texts)), "a post went out twice"
    # The old leader comes back (same state directory, a new id): it stays standby.
    posted = len(gateway.statuses)
    back = make_bot(tmp_path, "a", gateway, board, now, collector, "a:2")
    for _ in range(3):
        now[0] += INTERVAL
        standby.tick()
        back.tick()
    assert (standby.role, back.role) == ("leader", "standby")
    assert len(gateway.statuses) == posted
    for bot in (standby, back):
        bot.store.close()


def test_a_takeover_does_not_repeat_the_status_post(tmp_path: Path) -> None:
    """The leader's daily status post, seen due by the standby, is not posted again by it."""
    gateway = RecordingGateway(idempotency_window=3600.0)  # as Mastodon: keys kept an hour
    board, now = board_at()
    collector = Latency(now)
    leader = make_bot(tmp_path, "a", gateway, board, now, collector, "a:1", status_every='"1d"')
    standby = make_bot(tmp_path, "b", gateway, board, now, collector, "b:1", status_every='"1d"')

    def status_posts() -> int:
        return sum(s.post.kind is PostKind.STATUS for s in gateway.statuses.values())

    for step in range(240):  # two hours side by side
        now[0] = T0 + step * INTERVAL
        leader.tick()
        now[0] += 1
        standby.tick()
    assert (leader.role, standby.role, status_posts()) == ("leader", "standby", 1)
    leader.store.close()  # the leader dies, two hours after its status post
    for _ in range(10):
        now[0] += INTERVAL
        standby.tick()
    assert standby.role == "leader"
    assert status_posts() == 1, "the new leader repeated today's status post"
    now[0] = T0 + 86400 + 1
    standby.tick()
    assert status_posts() == 2, "the next day's is the new leader's"
    standby.store.close()


def test_a_report_due_while_standing_by_is_left_to_the_leader(tmp_path: Path) -> None:
    """A standby remembers a due report as the leader's: once leader, it does not post it."""
    gateway = RecordingGateway()
    board, now = board_at()
    leader = make_bot(tmp_path, "a", gateway, board, now, Latency(now), "a:1")
    standby = make_bot(tmp_path, "b", gateway, board, now, Latency(now), "b:1")
    leader.tick()
    standby.tick()
    assert standby.role == "standby" and standby.history is not None
    standby.reports = ReportsConfig(weekly=(4, 17 * 60 + 30), monthly=None)  # Friday 17:30
    standby.daily_counters = object()  # type: ignore[assignment]  # only checked for None
    friday = T0 + 3 * 86400 + 15.5 * 3600 + 60  # 2026-12-04T17:31Z, a minute after the slot
    notes: list[str] = []
    state = standby.incident_state()
    assert standby._due_reports(friday, state, notes, standby=True) == []
    assert notes == ["weekly report digest:2026-W48 not posted: left to the leader "
                     "(this bot was standby)"]
    notes.clear()
    assert standby._due_reports(friday + 60, state, notes) == [] and notes == []
    for bot in (leader, standby):
        bot.store.close()


def test_a_notice_the_dead_leader_never_sent_is_posted_by_the_new_one(tmp_path: Path) -> None:
    """The leader queues the notice while the instance is down and dies: the standby posts it."""
    gateway = RecordingGateway()
    board, now = board_at()
    collector = Latency(now)
    leader = make_bot(tmp_path, "a", gateway, board, now, collector, "a:1")
    standby = make_bot(tmp_path, "b", gateway, board, now, collector, "b:1")
    gateway.down = RetryableError("instance down")
    collector.latency = 400.0
    for step in range(2):
        now[0] = T0 + step * INTERVAL
        leader.tick()
        now[0] += 1
        standby.tick()
    assert gateway.statuses == {} and leader.store.pending() != []
    leader.store.close()  # dies with its notice unsent
    gateway.down = None
    for _ in range(4):
        now[0] += INTERVAL
        standby.tick()
    assert standby.role == "leader"
    notices = [s for s in gateway.statuses.values() if s.post.kind is PostKind.NOTICE]
    assert len(notices) == 1 and gateway.pinned == [notices[0].id]
    collector.latency = 0.0
    now[0] += INTERVAL
    standby.tick()
    replies = [s for s in gateway.statuses.values() if s.in_reply_to_id == notices[0].id]
    assert [s.post.kind for s in replies] == [PostKind.RESOLUTION] and gateway.pinned == []
    standby.store.close()


def test_a_returning_leader_drops_what_it_never_sent(tmp_path: Path) -> None:
    """Killed with posts unsent, back as standby: they are the new leader's, never sent late."""
    gateway = RecordingGateway()
    board, now = board_at()
    collector = Latency(now)
    first = make_bot(tmp_path, "a", gateway, board, now, collector, "a:1")
    gateway.down = RetryableError("instance down")
    collector.latency = 400.0
    first.tick()
    assert first.role == "leader" and len(first.store.pending()) >= 1
    first.store.close()  # killed with the notice unsent
    gateway.down = None
    now[0] += 0.5
    other = make_bot(tmp_path, "b", gateway, board, now, collector, "b:1")
    other.tick()
    assert other.role == "standby"  # a:1's lease still runs
    now[0] = T0 + 2 * INTERVAL + 1
    other.tick()
    assert other.role == "leader"
    back = make_bot(tmp_path, "a", gateway, board, now, collector, "a:2")
    report = back.tick()
    assert back.role == "standby" and back.store.pending() == []
    assert any("left to the leader" in note for note in report.notes)
    posted = len(gateway.statuses)
    other.store.close()  # now the other one dies; the returning bot takes over
    for _ in range(4):
        now[0] += INTERVAL
        back.tick()
    assert back.role == "leader"
    notices = [s for s in gateway.statuses.values() if s.post.kind is PostKind.NOTICE]
    assert len(notices) == 1, "the returning bot sent its stale notice beside the other's"
    admin = [s.post.text for s in gateway.statuses.values()][posted:]
    assert len(admin) == 1 and "this bot took over from the leader and found its pinned notice " \
        f"{notices[0].id}" in admin[0], admin
    back.store.close()


class Slow(Latency):
    """A collector whose reading takes longer than the lease: another bot takes it meanwhile."""

    def __init__(self, now: list[float], board: LeaseBoard) -> None:
        super().__init__(now)
        self.board = board
        self.slow = False

    def collect(self) -> Snapshot:
        if self.slow:
            self.now[0] += 3 * INTERVAL
            self.board.hold("b:1", 60_000)
        return super().collect()


def test_a_tick_slower_than_the_lease_delivers_nothing(tmp_path: Path) -> None:
    """The lease lapsed and was taken during a slow tick: its posts never go out."""
    gateway = RecordingGateway()
    board, now = board_at()
    collector = Slow(now, board)
    bot = make_bot(tmp_path, "a", gateway, board, now, collector, "a:1")
    bot.tick()
    assert bot.role == "leader" and gateway.statuses == {}
    collector.latency = 400.0  # an incident opens in the slow tick
    collector.slow = True
    report = bot.tick()
    assert [p.kind for p in report.posts] == [PostKind.NOTICE, PostKind.ADMIN]
    assert report.delivery is None and gateway.statuses == {}
    assert "standby lease lost during this tick: nothing delivered" in report.notes
    assert bot.role == "standby"
    collector.slow = False
    now[0] += INTERVAL
    report = bot.tick()  # standing by: the unsent posts are the leader's now
    assert bot.role == "standby" and gateway.statuses == {} and bot.store.pending() == []
    bot.store.close()


def test_still_leading_keeps_the_lease_on_a_redis_error() -> None:
    """No election on a Redis error: the leader delivers."""
    board, now = board_at()
    election = Election(board.lease("a"), INTERVAL)
    election.step()
    board.down = True
    assert election.still_leading() and election.role is Role.LEADER
    board.down = False
    now[0] += 3 * INTERVAL  # lapsed, nobody took it: taken again
    assert election.still_leading()
    board.hold("b", 60_000)
    assert not election.still_leading()
    assert not election.leading
