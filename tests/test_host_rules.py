"""Other hosts: per-host rules, the disk rule, not reporting, admins-only trouble, wording."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import pytest

from bot import compose, incidents
from bot.config import parse_duration
from bot.health import (
    ADMIN_ONLY_MUTE,
    REDIS_MUTE,
    HealthState,
    Rules,
    component_order,
    default_rules,
    evaluate,
    host_of,
    rules_from_config,
)
from bot.loop import ADMIN_ONLY_STATE, Bot
from bot.model import (
    DiskStats,
    EventKind,
    Finding,
    HostReading,
    HostSource,
    HostStats,
    Post,
    PostKind,
    QueueStats,
    RedisStats,
    Severity,
    SidekiqStats,
    Snapshot,
)
from bot.outbox import Outbox
from bot.page import parts_of
from bot.store import Store
from bot.testing import RecordingGateway
from bot.wording import Impact, neutral

GIB = 2**30
START = 1_796_090_400.0  # 2026-12-01T02:00:00Z


# --- factories ----------------------------------------------------------------------------


def disk(path: str, percent: float, total: int = 100 * GIB) -> DiskStats:
    used = round(total * percent / 100)
    return DiskStats(path=path, total_bytes=total, used_bytes=used, free_bytes=total - used,
                     percent=percent)


def stats(available: float = 50.0, swap: float = 0.0, *disks: DiskStats,
          total: int = 16 * GIB) -> HostStats:
    """A host with ``available`` percent of memory available and ``swap`` percent swap used."""
    return HostStats(
        hostname="h", memory_total_bytes=total,
        memory_available_bytes=round(total * available / 100), memory_percent=100 - available,
        swap_total_bytes=4 * GIB, swap_used_bytes=round(4 * GIB * swap / 100), swap_percent=swap,
        load_1m=0.0, load_5m=0.0, load_15m=0.0, cpu_count=2, cpu_percent=1.0,
        disks=tuple(disks), roles=())


def host(name: str, reading: HostStats | None = None, *, error: str | None = None,
         visible: bool = False, source: HostSource = HostSource.AGENT) -> HostReading:
    """Another host: reporting ``reading``, or not reporting (``error``) when it is None."""
    return HostReading(name=name, source=source, stats=reading,
                       error=error if reading is None else None, member_visible=visible)


def sidekiq_ok() -> SidekiqStats:
    queue = QueueStats("default", 0, 0.0, False, True)
    return SidekiqStats(
        processed=10, failed=0, processed_today=10, failed_today=0, scheduled=0, retries=0,
        dead=0, enqueued=0, queues=(queue,), processes=(), processes_registered=1,
        live_processes=1, stale_processes=0, busy=0, concurrency=5, utilisation=0.0,
        anomaly_count=0, anomalies=())


def snap(*hosts: HostReading, machine: HostStats | None = None, reachable: bool = True,
         at: float = 0.0) -> Snapshot:
    redis = RedisStats("redis://127.0.0.1:6379/0", "", reachable,
                       error=None if reachable else "refused")
    return Snapshot(collected_at=at, redis=redis, sidekiq=sidekiq_ok() if reachable else None,
                    host=machine, host_error=None if machine else "test: no host",
                    hosts=tuple(hosts))


def judge(snapshot: Snapshot, host_rules: Mapping[str, Rules] | None = None,
          rules: Rules | None = None, times: Sequence[float] = (0.0, 600.0),
          ) -> tuple[Finding, ...]:
    """Evaluate the same snapshot at each of ``times``; return the last findings."""
    state, findings = HealthState.initial(), tuple[Finding, ...]()
    for now in times:
        state, findings = evaluate(snapshot, state, rules or default_rules(), now,
                                   host_rules=host_rules)
    return findings


def host_rules(**tables: Mapping[str, object]) -> dict[str, Rules]:
    """Per-host rules from ``[hosts.health]``-shaped tables, starting from the defaults."""
    built = {}
    for name, table in tables.items():
        rules, problems = rules_from_config(table, duration=parse_duration)
        assert problems == []
        built[name.replace("_", "-")] = rules
    return built


def summary(findings: Sequence[Finding]) -> dict[str, tuple[str, str | None]]:
    return {f.component: (f.severity.name, f.muted) for f in findings}


# --- findings per host ---------------------------------------------------------------------

LOW_MEMORY_DB = {"memory_available_percent": {"warning": 40, "critical": 20, "for": 0}}


@pytest.mark.parametrize(
    ("snapshot", "overrides", "expected"),
    [
        pytest.param(snap(host("db-1", stats(30)), host("worker-2", stats(30))), {}, {},
                     id="all-fine-with-the-defaults"),
        pytest.param(snap(host("db-1", stats(30), visible=True),
                          host("worker-2", stats(30), visible=True)),
                     {"db_1": LOW_MEMORY_DB},
                     {"memory@db-1": ("WARNING", None)},
                     id="override-fires-for-that-host-only"),
        pytest.param(snap(host("db-1", stats(30)), host("worker-2", stats(30))),
                     {"db_1": LOW_MEMORY_DB},
                     {"memory@db-1": ("WARNING", ADMIN_ONLY_MUTE)},
                     id="override-on-a-host-members-do-not-hear-of"),
        pytest.param(snap(host("db-1", stats(3), visible=True),
                          host("worker-2", stats(50, 90), visible=True)), {},
                     {"memory@db-1": ("CRITICAL", None), "swap@worker-2": ("CRITICAL", None)},
                     id="default-memory-and-swap-rules-per-host"),
        pytest.param(snap(host("db-1", stats(50, 0, disk("/var", 96), disk("/", 40)),
                               visible=True)), {},
                     {"disk@db-1:/var": ("CRITICAL", None)},
                     id="disk-rule-on-another-host"),
        pytest.param(snap(host("db-1", stats(50, 0, disk("/var", 96)), visible=True)),
                     {"db_1": {"disk_used_percent": {"warning": 97, "critical": 99}}}, {},
                     id="disk-override-raises-the-threshold"),
        pytest.param(snap(machine=stats(50, 0, disk("/", 91), disk("/srv", 10))), {},
                     {"disk:/": ("WARNING", None)},
                     id="disk-rule-on-this-host"),
        pytest.param(snap(machine=stats(50, 0, DiskStats("/mnt", None, None, None, None,
                                                         "permission denied"))), {}, {},
                     id="an-unread-disk-is-unknown-not-a-finding"),
        pytest.param(snap(host("worker-2", error="reading expired 95 s ago")), {},
                     {"host@worker-2": ("WARNING", ADMIN_ONLY_MUTE)},
                     id="not-reporting-admins-only"),
        pytest.param(snap(host("worker-2", error="reading expired 95 s ago", visible=True)), {},
                     {"host@worker-2": ("WARNING", None)},
                     id="not-reporting-member-visible"),
        pytest.param(snap(host("worker-2", error="timed out", source=HostSource.NODE_EXPORTER),
                          reachable=False), {},
                     {"redis": ("CRITICAL", None),
                      "host@worker-2": ("WARNING", ADMIN_ONLY_MUTE)},
                     id="an-exporter-does-not-need-redis"),
        pytest.param(snap(host("worker-2", error="redis unreachable", visible=True),
                          reachable=False), {},
                     {"redis": ("CRITICAL", None), "host@worker-2": ("WARNING", REDIS_MUTE)},
                     id="agents-unread-while-redis-is-down-is-its-symptom"),
    ],
)
def test_findings_per_host(snapshot: Snapshot, overrides: Mapping[str, Mapping[str, object]],
                           expected: Mapping[str, tuple[str, str | None]]) -> None:
    """Each host is judged by its own rules; who hears of it depends on ``member_visible``."""
    assert summary(judge(snapshot, host_rules(**overrides))) == expected


def test_the_admin_reason_names_the_host() -> None:
    """An admin reads which host is short of what, with its numbers."""
    findings = judge(snap(host("db-1", stats(2.5)), host("worker-2", error="reading expired")))
    reasons = {f.component: f.reason for f in findings}
    assert reasons["memory@db-1"] == (
        "memory on db-1: 2.5% available (critical at 5%), 410 MiB of 16.0 GiB")
    assert reasons["host@worker-2"].startswith("host worker-2 not reporting for 10 min")
    assert reasons["host@worker-2"].endswith(": reading expired")


def test_not_reporting_waits_for_its_rule_and_clears_after_its_hold() -> None:
    """A missed scrape is no news; the finding clears once the host reported for a minute."""
    silent = snap(host("w", error="timed out", visible=True))
    back = snap(host("w", stats(), visible=True))
    state = HealthState.initial()
    seen = []
    for now, snapshot in [(0, silent), (30, silent), (60, silent), (90, back), (120, back),
                          (150, back)]:
        state, findings = evaluate(snapshot, state, default_rules(), float(now))
        seen.append(summary(findings).get("host@w", ("OK", None))[0])
    assert seen == ["OK", "OK", "WARNING", "WARNING", "WARNING", "OK"]


def test_a_host_no_longer_listed_is_forgotten_unless_redis_is_down() -> None:
    """A host removed from the list leaves no finding behind; an unread list changes nothing."""
    state, findings = evaluate(snap(host("db-1", stats(3), visible=True)), HealthState(),
                               default_rules(), 0.0)
    state, findings = evaluate(snap(host("db-1", stats(3), visible=True)), state,
                               default_rules(), 600.0)
    assert "memory@db-1" in summary(findings)
    kept, findings = evaluate(snap(reachable=False), state, default_rules(), 630.0)
    assert summary(findings)["memory@db-1"] == ("CRITICAL", REDIS_MUTE)
    _, findings = evaluate(snap(), kept, default_rules(), 660.0)
    assert "memory@db-1" not in summary(findings)


def test_component_names_rank_with_their_kind_and_never_read_as_queues() -> None:
    """``memory@db-1`` ranks with memory after this host's; a queue with an @ stays a queue."""
    names = ["queue:push", "host@w", "memory@db-1", "disk@db-1:/var", "memory", "redis",
             "disk:/", "swap@w", "queue:odd@name"]
    assert sorted(names, key=component_order) == [
        "redis", "memory", "memory@db-1", "swap@w", "disk:/", "disk@db-1:/var", "host@w",
        "queue:push", "queue:odd@name"]
    assert sorted(names, key=incidents.component_order) == sorted(names, key=component_order)
    assert [host_of(n) for n in ("queue:odd@name", "memory", "disk:/", "memory@db-1",
                                 "host@a:b", "disk@db-1:/var")] == [
        None, None, None, "db-1", "a:b", "db-1"]
    assert host_of("disk@[::1]:9100:/var", {"[::1]:9100"}) == "[::1]:9100"
    assert parts_of("memory@db-1") == parts_of("swap@db-1") == parts_of("memory") == ("web",)


def test_disk_and_host_rules_read_from_the_health_table() -> None:
    """``[health.disk_used_percent]`` and ``[health.host_not_reporting]`` read like the rest."""
    rules, problems = rules_from_config(
        {"disk_used_percent": {"warning": 80, "critical": 90},
         "host_not_reporting": {"warning": "2m", "critical": "1h"}}, duration=parse_duration)
    assert problems == []
    assert (rules.disk_used_percent.warning, rules.disk_used_percent.critical) == (80, 90)
    assert rules.disk_used_percent.for_s == 300  # kept from the defaults
    assert (rules.host_not_reporting.warning, rules.host_not_reporting.critical) == (120, 3600)
    _, problems = rules_from_config({"disk_used_percent": {"warning": 95, "critical": 90}})
    assert problems == ["disk_used_percent: warning (95) must be below critical (90)"]


def test_the_worst_memory_of_a_host_is_its_lowest() -> None:
    """An incident's peak value of another host's memory is the least available seen."""
    def finding(value: float) -> Finding:
        return Finding("memory@db-1", Severity.WARNING, "low", value=value, since=0.0)

    state, _ = incidents.step(incidents.IncidentState(), [finding(8.0)], 0.0, incidents.Policy())
    state, _ = incidents.step(state, [finding(3.0)], 30.0, incidents.Policy())
    state, _ = incidents.step(state, [finding(9.0)], 60.0, incidents.Policy())
    assert state.open is not None
    assert state.open.affected[0].peak_value == 3.0


# --- what members and admins read ----------------------------------------------------------

SETTINGS = compose.Settings(instance="example.social", admin_accts=("alice",))


def posts_for(snapshot: Snapshot) -> tuple[Post, ...]:
    """The posts of the incident that ``snapshot`` opens (judged 10 minutes long)."""
    findings = judge(dataclasses.replace(snapshot, collected_at=START),
                     times=(START - 600.0, START))
    _, events = incidents.step(incidents.IncidentState(), findings, START, incidents.Policy())
    assert [e.kind for e in events] == [EventKind.OPENED]
    return compose.compose_event(events[0], snapshot, SETTINGS)


def test_members_read_one_of_our_servers_without_names_or_numbers() -> None:
    """Several hosts short on memory: one impact sentence, no host name, no figure."""
    snapshot = snap(host("db-1", stats(3), visible=True),
                    host("worker-2", stats(4, 90), visible=True), machine=stats(2))
    member, admin = posts_for(snapshot)
    assert member.text.splitlines()[1:-1] == [
        "One of our servers is short on memory; pages may be slow or fail."]
    assert "db-1" not in member.text and "worker" not in member.text and "%" not in member.text
    assert "memory on db-1: 3% available" in admin.text
    assert "swap on worker-2: 90% used" in admin.text
    assert compose.admin_details("memory", snapshot, None, START, SETTINGS).splitlines()[1:] == [
        "Memory: 2% available (328 MiB of 16.0 GiB); swap 0 MiB of 4.0 GiB used (0%)",
        "By role: ",
        "Other hosts: db-1 3% memory available (492 MiB of 16.0 GiB), worker-2 4% memory "
        "available (655 MiB of 16.0 GiB)"]


def test_one_host_alone_keeps_the_wording_of_before() -> None:
    """Without other hosts, this host's memory reads as it always did."""
    member, _ = posts_for(snap(machine=stats(2)))
    assert member.text.splitlines()[1:-1] == [
        "The server is short on memory; pages may be slow or fail."]


@pytest.mark.parametrize(
    ("snapshot", "sentence"),
    [
        pytest.param(snap(host("db-1", stats()), machine=stats(2)),
                     "One of our servers is short on memory; pages may be slow or fail.",
                     id="this-host-among-several"),
        pytest.param(snap(host("db-1", stats(50, 0, disk("/var", 99)), visible=True)),
                     "One of our servers is running out of disk space; uploads and new posts "
                     "may fail.", id="disk-on-another"),
        pytest.param(snap(machine=stats(50, 0, disk("/", 99))),
                     "The server is running out of disk space; uploads and new posts may fail.",
                     id="disk-on-the-only-host"),
        pytest.param(snap(host("w", error="expired", visible=True)),
                     "One of our servers is not responding; parts of the service may not work.",
                     id="member-visible-host-not-reporting"),
    ],
)
def test_member_sentences_for_hosts(snapshot: Snapshot, sentence: str) -> None:
    """Each kind of host trouble has its member sentence, impact only."""
    member, _ = posts_for(snapshot)
    assert member.text.splitlines()[1:-1] == [sentence]


def test_host_wording_is_adaptable() -> None:
    """``[wording.impacts."memory@*"]`` changes what members read about any other host."""
    words = dataclasses.replace(SETTINGS.wording, impacts={
        **SETTINGS.wording.impacts,
        "memory@*": Impact("Ein Server hat zu wenig Speicher.", "Speicher", "Speicher")})
    assert words.impact("memory@db-1").sentence == "Ein Server hat zu wenig Speicher."
    assert words.impact("memory", several_hosts=True).sentence.startswith("Ein Server")
    assert words.impact("memory").sentence.startswith("The server")
    assert words.problems() == []


def test_profile_and_resolution_speak_of_a_server() -> None:
    """The profile field and the resolution name no host either."""
    snapshot = snap(host("db-1", stats(3), visible=True))
    findings = judge(snapshot, times=(START - 600, START))
    state, _ = incidents.step(incidents.IncidentState(), findings, START, incidents.Policy())
    assert compose.profile_field(state.open, START, SETTINGS)[1].startswith(
        "⚠️ A server short on memory")
    _, events = incidents.step(state, (), START + 900, incidents.Policy())
    resolution = compose.compose_event(events[0], snapshot, SETTINGS)[0]
    assert "What was affected: memory on one of our servers." in resolution.text


# --- hostile host names --------------------------------------------------------------------

HOSTILE = [
    "@someone",
    "@admin@evil.example",
    "x" * 5000,
    "evil\x1b]8;;https://evil.example\x07click\x1b]8;;\x07\x00\r\nname",
    "\u202egnp.exe\u200b#tag",
    "https://evil.example/#x",
]
MENTIONS = "@alice "


def visible_text(post: Post) -> str:
    return post.text.removeprefix(MENTIONS) if post.kind is PostKind.ADMIN else post.text


def assert_clean(text: str) -> None:
    assert "@" not in text and "#" not in text and "://" not in text
    assert not re.search(r"[\x00-\x1f\x7f\u200b\u202e]", text.replace("\n", ""))
    assert "evil.example" not in text


@pytest.mark.parametrize("name", HOSTILE, ids=["mention", "full-mention", "very-long",
                                                "escapes-and-controls", "rtl-and-hashtag",
                                                "link"])
def test_hostile_host_names_never_reach_members_and_are_neutral_for_admins(name: str) -> None:
    """A host's name is outside text: members never see it, admins see it neutralised."""
    visible = snap(host(name, stats(3), visible=True),
                   host(name + "-2", error=f"{name} is gone", visible=True))
    member, admin = posts_for(visible)
    assert name[:20] not in member.text and "x" * 20 not in member.text
    assert_clean(member.text)
    assert_clean(visible_text(admin))
    assert neutral(name) in admin.text
    assert compose.mastodon_length(admin.text) <= SETTINGS.max_characters

    quiet = snap(host(name, error=f"{name} is gone"))
    findings = judge(dataclasses.replace(quiet, collected_at=START), times=(START - 600, START))
    only = [dataclasses.replace(f, muted=None) for f in findings if f.muted == ADMIN_ONLY_MUTE]
    _, events = incidents.step(incidents.IncidentState(), only, START, incidents.Policy())
    told = compose.admin_only_event(events[0], quiet, SETTINGS)
    assert told is not None
    assert_clean(visible_text(told))
    assert f"host {neutral(name)} is not reporting: " in told.text


# --- the loop: admins told once -------------------------------------------------------------


class Script:
    """A collector that returns scripted snapshots, one per tick."""

    def __init__(self, items: Sequence[Snapshot]) -> None:
        self.items = iter(items)

    def collect(self) -> Snapshot:
        return next(self.items)


def run(items: Sequence[Snapshot], overrides: Mapping[str, Rules] | None = None,
        ) -> tuple[Bot, Store, RecordingGateway]:
    clock = [items[0].collected_at]
    store = Store(":memory:")
    gateway = RecordingGateway()
    bot = Bot(collector=Script(items), store=store,  # type: ignore[arg-type]
              outbox=Outbox(store, gateway, clock=lambda: clock[0]), gateway=gateway,
              settings=SETTINGS, rules=default_rules(), policy=incidents.Policy(),
              host_rules=overrides, clock=lambda: clock[0])
    for item in items:
        clock[0] = item.collected_at
        bot.tick()
    return bot, store, gateway


def hosts_over_time(visible: bool) -> list[Snapshot]:
    """worker-2 reports, stops for 20 minutes, reports again; a tick every 30 s."""
    items = []
    for n in range(80):
        at = START + 30 * n
        silent = 10 <= n < 50
        worker = host("worker-2", None if silent else stats(), visible=visible,
                      error="reading expired")
        items.append(snap(host("db-1", stats()), worker, machine=stats(), at=at))
    return items


def test_admins_are_told_once_when_a_host_stops_and_once_when_it_is_back() -> None:
    """A host members do not hear about: two admin messages in all, no member post."""
    _, store, gateway = run(hosts_over_time(visible=False))
    texts = [s.post.text for s in gateway.statuses.values()]
    assert [s.post.visibility for s in gateway.statuses.values()] == ["direct", "direct"]
    assert texts[0] == ("@alice example.social: trouble on a host members do not hear about "
                        "(admins only).\nhost worker-2 is not reporting: reading expired")
    assert texts[1].startswith("@alice example.social: hosts members do not hear about are "
                               "fine again after ")
    assert texts[1].endswith("\nhost worker-2 is reporting again")
    assert gateway.calls_to("pin") == []
    assert incidents.IncidentState.from_json(store.get_state(ADMIN_ONLY_STATE) or {}).open is None


def test_a_member_visible_host_opens_the_members_incident() -> None:
    """A host members hear about: one notice, one resolution, each with its admin message."""
    _, _, gateway = run(hosts_over_time(visible=True))
    kinds = [(s.post.kind, s.post.visibility) for s in gateway.statuses.values()]
    assert kinds == [(PostKind.NOTICE, "public"), (PostKind.ADMIN, "direct"),
                     (PostKind.RESOLUTION, "public"), (PostKind.ADMIN, "direct")]
    notice = next(iter(gateway.statuses.values())).post.text
    assert "One of our servers is not responding" in notice and "worker" not in notice


def test_a_per_host_override_fires_in_the_loop_and_names_the_host() -> None:
    """The must-show case: a memory rule fires for one host only, and admins read its name."""
    items = [snap(host("db-1", stats(30)), host("worker-2", stats(30)), at=START + 30 * n)
             for n in range(5)]
    _, _, gateway = run(items, host_rules(db_1=LOW_MEMORY_DB))
    texts = [s.post.text for s in gateway.statuses.values()]
    assert len(texts) == 1
    assert f"{neutral('memory@db-1')} warning since" in texts[0]  # a look-alike @
    assert "memory on db-1: 30% available (warning at 40%)" in texts[0]
    assert "worker-2" not in texts[0].split("Other hosts:")[0]


def test_admins_only_trouble_muted_by_redis_is_closed_not_called_fine() -> None:
    """An agent's host unread because Redis is down is not "reporting again"."""
    items = []
    for n in range(40):
        silent, redis_down = n >= 10, n >= 30
        worker = host("worker-2", None if silent else stats(),
                      error="Redis unreachable" if redis_down else "reading expired")
        items.append(snap(worker, reachable=not redis_down, at=START + 30 * n))
    _, _, gateway = run(items)
    direct = [s.post.text for s in gateway.statuses.values() if s.post.kind is PostKind.ADMIN
              and s.post.key.startswith(compose.ADMIN_ONLY_PREFIX)]
    assert len(direct) == 2
    assert direct[0].endswith("host worker-2 is not reporting: reading expired")
    assert "no more messages about hosts members do not hear about" in direct[1]
    assert "reporting again" not in direct[1]
