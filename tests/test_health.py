"""Detection: rule levels, hysteresis, flap holding, root causes, mutes, state round trip."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import pytest

from bot.config import parse_duration
from bot.health import (
    ALL_UNSERVED,
    NO_SIDEKIQ_MUTE,
    HealthState,
    Mute,
    Rule,
    Rules,
    default_rules,
    evaluate,
    is_flapping,
    override_rule,
    rules_from_config,
)
from bot.model import (
    Finding,
    HostStats,
    InstanceHealth,
    QueueStats,
    RedisStats,
    Severity,
    SidekiqStats,
    Snapshot,
)

GIB = 2**30

# --- factories ----------------------------------------------------------------------------


def queue(name: str = "push", size: int = 5, latency: float | None = 0.0, *,
          served: bool = True, paused: bool = False) -> QueueStats:
    return QueueStats(name=name, size=size, latency_s=latency, paused=paused, served=served)


def sidekiq(*queues: QueueStats, live: int = 1, dead: int = 0, stale: int = 0) -> SidekiqStats:
    return SidekiqStats(
        processed=0, failed=0, processed_today=0, failed_today=0, scheduled=0, retries=0,
        dead=dead, enqueued=sum(q.size for q in queues), queues=queues, processes=(),
        processes_registered=live + stale, live_processes=live, stale_processes=stale,
        busy=0, concurrency=25 * live, utilisation=0.0 if live else None, anomaly_count=0,
        anomalies=())


def host(available: float = 50.0, swap: float = 0.0, *, total: int = 16 * GIB,
         swap_total: int = 4 * GIB) -> HostStats:
    """A host with ``available`` percent of memory available and ``swap`` percent swap used."""
    return HostStats(
        hostname="vm", memory_total_bytes=total,
        memory_available_bytes=round(total * available / 100), memory_percent=100 - available,
        swap_total_bytes=swap_total, swap_used_bytes=round(swap_total * swap / 100),
        swap_percent=swap, load_1m=0.0, load_5m=0.0, load_15m=0.0, cpu_count=2,
        cpu_percent=1.0, disks=(), roles=())


def snap(*queues: QueueStats, live: int = 1, dead: int = 0, stale: int = 0,
         machine: HostStats | None = None) -> Snapshot:
    """A snapshot with Redis reachable; the host reading failed unless ``machine`` is given."""
    return Snapshot(collected_at=0.0, redis=RedisStats(url="redis://r:6379/0", namespace="",
                                                        reachable=True),
                    sidekiq=sidekiq(*queues, live=live, dead=dead, stale=stale), host=machine,
                    host_error=None if machine else "test: no host")


def down(error: str = "ConnectionError: refused") -> Snapshot:
    """A snapshot taken while Redis was unreachable."""
    return Snapshot(collected_at=0.0, redis=RedisStats(url="redis://r:6379/0", namespace="",
                                                        reachable=False, error=error),
                    sidekiq=None, host=None, host_error="test: no host")


Step = tuple[float, Snapshot] | tuple[float, Snapshot, InstanceHealth | None]


def run(steps: Sequence[Step], rules: Rules | None = None,
        mutes: Sequence[Mute] = ()) -> tuple[HealthState, list[tuple[Finding, ...]]]:
    """Evaluate ``steps`` in order from the initial state; return the last state and findings."""
    state = HealthState.initial()
    ticks = []
    for now, snapshot, *rest in steps:
        instance = rest[0] if rest else None
        state, findings = evaluate(snapshot, state, rules or default_rules(), now, mutes,
                                   instance=instance)
        ticks.append(findings)
    return state, ticks


def brief(finding: Finding) -> str:
    """``queue:push=C``, ``~`` when flapping, ``/why`` when muted."""
    text = f"{finding.component}={finding.severity.name[0]}"
    text += "~" if is_flapping(finding) else ""
    return text + (f"/{finding.muted}" if finding.muted else "")


def briefs(ticks: list[tuple[Finding, ...]]) -> list[tuple[str, ...]]:
    return [tuple(brief(f) for f in findings) for findings in ticks]


def letters(ticks: list[tuple[Finding, ...]], component: str) -> str:
    """One letter per tick for ``component``: O (no finding), W, C; lower case when flapping."""
    out = ""
    for findings in ticks:
        found = [f for f in findings if f.component == component]
        letter = found[0].severity.name[0] if found else "O"
        out += letter.lower() if found and is_flapping(found[0]) else letter
    return out


def found(findings: tuple[Finding, ...], component: str) -> Finding:
    return next(f for f in findings if f.component == component)


# --- rules --------------------------------------------------------------------------------

UP = Rule(warning=10, critical=20, for_s=60, clear=5, clear_for_s=90)
DOWN = Rule(warning=10, critical=5, for_s=60, clear=15, clear_for_s=90, higher_is_worse=False)


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        pytest.param(UP, 9.9, Severity.OK, id="below-warning"),
        pytest.param(UP, 10, Severity.WARNING, id="at-warning"),
        pytest.param(UP, 19, Severity.WARNING, id="between"),
        pytest.param(UP, 20, Severity.CRITICAL, id="at-critical"),
        pytest.param(DOWN, 10.1, Severity.OK, id="lower-is-worse-fine"),
        pytest.param(DOWN, 10, Severity.WARNING, id="lower-is-worse-at-warning"),
        pytest.param(DOWN, 5, Severity.CRITICAL, id="lower-is-worse-at-critical"),
        pytest.param(DOWN, 0, Severity.CRITICAL, id="lower-is-worse-nothing-left"),
    ],
)
def test_rule_level(rule: Rule, value: float, expected: Severity) -> None:
    """A value at or beyond a threshold is at that level; lower-is-worse turns it round."""
    assert expected == rule.level(value)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        pytest.param(UP, [], id="fine"),
        pytest.param(DOWN, [], id="fine-lower-is-worse"),
        pytest.param(Rule(30, 30), ["warning (30) must be below critical (30)"], id="equal"),
        pytest.param(Rule(10, 20, clear=15), ["clear (15) must be at most warning (10)"],
                     id="clear-above-warning"),
        pytest.param(Rule(10, 20, higher_is_worse=False),
                     ["warning (10) must be above critical (20): lower is worse here"],
                     id="lower-is-worse-upside-down"),
        pytest.param(Rule(10, 5, clear=8, higher_is_worse=False),
                     ["clear (8) must be at least warning (10): lower is worse here"],
                     id="lower-is-worse-clear-below-warning"),
        pytest.param(Rule(10, 20, for_s=-1, clear_for_s=-2),
                     ["for must be at least 0 seconds, got -1",
                      "clear_for must be at least 0 seconds, got -2"], id="negative-times"),
        pytest.param(Rule(10, float("nan")), ["critical must be a finite number, got nan"],
                     id="nan"),
    ],
)
def test_rule_validate(rule: Rule, expected: list[str]) -> None:
    """Impossible thresholds are reported in configuration words."""
    assert expected == rule.validate()


def test_default_rules_are_valid() -> None:
    """The built-in rules pass their own validation."""
    expected: list[str] = []
    assert expected == default_rules().validate()


@pytest.mark.parametrize(
    ("queue_name", "expected"),
    [
        pytest.param("default", Rule(60, 300, 120, 30, 300), id="default"),
        pytest.param("push", Rule(300, 1800, 120, 150, 300), id="push"),
        pytest.param("ingress", Rule(300, 1800, 120, 150, 300), id="ingress"),
        pytest.param("mailers", Rule(300, 1800, 120, 150, 300), id="mailers"),
        pytest.param("pull", Rule(1800, 7200, 120, 900, 300), id="pull"),
        pytest.param("scheduler", Rule(300, 1800, 120, 150, 300), id="scheduler"),
        pytest.param("fasp", Rule(600, 3600, 120, 300, 300), id="fasp"),
        pytest.param("custom", Rule(600, 3600, 120, 300, 300), id="any-other-queue"),
    ],
)
def test_default_queue_latency(queue_name: str, expected: Rule) -> None:
    """Mastodon's queues have their own latency rules; any other queue gets "*"'s."""
    assert expected == default_rules().latency_rule(queue_name)


def test_rules_validate_names_the_key() -> None:
    """Rules.validate prefixes each problem with the rule's key."""
    rules = dataclasses.replace(default_rules(), queue_latency={"push": Rule(9, 1)},
                                memory_available_percent=Rule(1, 2), flap_changes=0)
    expected = [
        "queue_latency.push: warning (9) must be below critical (1)",
        "memory_available_percent: a lower value must be worse",
        "flap_changes: must be at least 1, got 0",
    ]
    assert expected == rules.validate()


def minutes(text: str) -> float:
    """A stand-in for config.parse_duration that knows only minutes."""
    if not text.endswith("m"):
        raise ValueError(f"not a duration: {text!r}")
    return float(text[:-1]) * 60


@pytest.mark.parametrize(
    ("table", "path", "expected", "problems"),
    [
        pytest.param({}, "queue_latency.push", Rule(300, 1800, 120, 150, 300), [],
                     id="nothing-overridden"),
        pytest.param({"queue_latency": {"push": {"warning": 600}}}, "queue_latency.push",
                     Rule(600, 1800, 120, 300, 300), [], id="warning-keeps-clear-proportion"),
        pytest.param({"queue_latency": {"push": {"warning": 600, "clear": 100}}},
                     "queue_latency.push", Rule(600, 1800, 120, 100, 300), [],
                     id="explicit-clear-wins"),
        pytest.param({"queue_latency": {"custom": {"critical": 7200}}},
                     "queue_latency.custom", Rule(600, 7200, 120, 300, 300), [],
                     id="new-queue-starts-from-star"),
        pytest.param({"queue_latency": {"custom": {"critical": 9000}, "*": {"warning": 1200}}},
                     "queue_latency.custom", Rule(1200, 9000, 120, 600, 300), [],
                     id="new-queue-starts-from-overridden-star"),
        pytest.param({"queue_latency": {"push": {"for": "5m", "clear_for": 60}}},
                     "queue_latency.push", Rule(300, 1800, 300, 150, 60), [],
                     id="durations"),
        pytest.param({"memory_available_percent": {"warning": 20}},
                     "memory_available_percent",
                     Rule(20, 5, 60, 30, 300, higher_is_worse=False), [],
                     id="memory-lower-is-worse-proportion"),
        pytest.param({"web_down": {"critical": "5m"}}, "web_down",
                     Rule(60, 300, clear_for_s=120), [], id="seconds-rule-duration"),
        pytest.param({"swap_used_percent": {"critical": "5m"}}, "swap_used_percent",
                     Rule(50, 80, 300, 40, 600),
                     ["swap_used_percent.critical: must be a number, got str '5m'"],
                     id="percent-is-no-duration"),
        pytest.param({"web_down": {"critical": "5h"}}, "web_down",
                     Rule(60, 90, clear_for_s=120),
                     ["web_down.critical: not a duration: '5h'"], id="bad-duration"),
        pytest.param({"memory_available_percent": {"warn": 1}}, "memory_available_percent",
                     Rule(10, 5, 60, 15, 300, higher_is_worse=False),
                     ["memory_available_percent.warn: unknown key "
                      "(known: warning, critical, for, clear, clear_for)"], id="unknown-key"),
        pytest.param({"bogus": 1}, "unserved", Rule(30, 60, clear_for_s=60),
                     ["bogus: unknown key"], id="unknown-rule"),
        pytest.param({"dead_growth_per_hour": {"critical": True}}, "dead_growth_per_hour",
                     Rule(50, 500, clear=25, clear_for_s=600),
                     ["dead_growth_per_hour.critical: must be a number, got bool True"],
                     id="bool-is-no-number"),
        pytest.param({"queue_latency": {"push": {"warning": 5000}}}, "queue_latency.push",
                     Rule(5000, 1800, 120, 2500, 300),
                     ["queue_latency.push: warning (5000) must be below critical (1800)"],
                     id="invalid-after-override"),
        pytest.param({"unserved": 30}, "unserved", Rule(30, 60, clear_for_s=60),
                     ["unserved: must be a table of warning, critical, for, clear, clear_for"],
                     id="not-a-table"),
    ],
)
def test_rules_from_config(table: dict[str, Any], path: str, expected: Rule,
                           problems: list[str]) -> None:
    """Overrides replace only what they name; every problem names its key."""
    rules, found_problems = rules_from_config(table, duration=minutes)
    name, _, queue_name = path.partition(".")
    rule = rules.queue_latency[queue_name] if queue_name else getattr(rules, name)
    assert (expected, problems) == (rule, found_problems)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param({"flap_window": "30m", "flap_changes": 6}, (1800.0, 6, []), id="set"),
        pytest.param({"flap_changes": 0}, (3600.0, 0, ["flap_changes: must be at least 1, got 0"]),
                     id="zero-changes"),
        pytest.param({"flap_changes": 2.5},
                     (3600.0, 4, ["flap_changes: must be a whole number, got 2.5"]),
                     id="fractional-changes"),
    ],
)
def test_rules_from_config_flapping(table: dict[str, Any],
                                    expected: tuple[float, int, list[str]]) -> None:
    """Flap settings are read, typed and validated."""
    rules, problems = rules_from_config(table, duration=minutes)
    assert expected == (rules.flap_window_s, rules.flap_changes, problems)


def test_override_rule_without_clear_follows_warning() -> None:
    """A rule without an explicit clear keeps clearing at its (new) warning."""
    assert Rule(45, 90, clear_for_s=120) == override_rule(Rule(60, 90, clear_for_s=120),
                                                          {"warning": 45})


# --- hysteresis ---------------------------------------------------------------------------


def with_rule(rule: Rule) -> Rules:
    """Default rules with ``rule`` for every queue and flap holding off."""
    return dataclasses.replace(default_rules(), queue_latency={"*": rule}, flap_window_s=0)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([10, 10, 10, 10], "OOWW", id="fires-after-for"),
        pytest.param([15, 15, 0, 15, 15, 0], "OOOOOO", id="spikes-shorter-than-for"),
        pytest.param([15, 15, 4, 15, 15, 15], "OOOOOW", id="for-restarts-after-dip"),
        pytest.param([25, 25, 25], "OOC", id="straight-to-critical"),
        pytest.param([10, 10, 10, 25, 25, 25], "OOWWWC", id="escalation-needs-for"),
        pytest.param([10, 10, 10, 25, 10, 10], "OOWWWW", id="short-critical-spike-ignored"),
        pytest.param([10, 10, 10, 7, 7, 7, 7, 7], "OOWWWWWW", id="band-holds"),
        pytest.param([10, 10, 10, 4, 4, 4, 4], "OOWWWWO", id="clears-after-hold"),
        pytest.param([10, 10, 10, 4, 4, 7, 4, 4, 4, 4], "OOWWWWWWWO", id="clear-hold-restarts"),
        pytest.param([25, 25, 25, 15, 15, 15, 15, 4, 4, 4, 4], "OOCCCCWWWWO",
                     id="steps-down-then-clears"),
        pytest.param([25, 25, 25, 0, 0, 0, 0], "OOCCCCO", id="critical-clears-directly"),
        pytest.param([25, 25, 25, 15, 15, 25, 15, 15, 15, 15], "OOCCCCCCCW",
                     id="step-down-hold-restarts"),
        pytest.param([10, None, 10, None, 4, None, None, 4], "OOWWWWWO",
                     id="unknown-keeps-timers"),
        pytest.param([10, None, None, None], "OOOO", id="unknown-fires-nothing"),
    ],
)
def test_hysteresis(values: list[float | None], expected: str) -> None:
    """Levels fire after for_s and clear or step down only after clear_for_s (ticks of 30 s).

    Rule: warning 10, critical 20, for 60 s, clear below 5, clear_for 90 s.
    """
    steps = [(30.0 * i, snap(queue("push", 3, v))) for i, v in enumerate(values)]
    assert expected == letters(run(steps, with_rule(UP))[1], "queue:push")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([9, 9, 9], "OOW", id="low-fires"),
        pytest.param([10, 10, 10], "OOW", id="at-warning"),
        pytest.param([4, 4, 4, 12, 12, 12, 12, 16, 16, 16, 16], "OOCCCCWWWWO",
                     id="steps-up-then-clears"),
        pytest.param([9, 9, 9, 14, 14, 14, 14, 14], "OOWWWWWW", id="band-holds"),
        pytest.param([9, 9, 9, 50, 50, 50, 50], "OOWWWWO", id="clears-after-hold"),
    ],
)
def test_hysteresis_lower_is_worse(values: list[float], expected: str) -> None:
    """Memory available: lower is worse, and it clears above its clear level.

    Rule: warning 10 %, critical 5 %, for 60 s, clear above 15 %, clear_for 90 s.
    """
    rules = dataclasses.replace(with_rule(UP), memory_available_percent=DOWN)
    steps = [(30.0 * i, snap(machine=host(available=v))) for i, v in enumerate(values)]
    assert expected == letters(run(steps, rules)[1], "memory")


def test_since_is_when_firing_began() -> None:
    """Since is when the finding first fired, kept through escalation; value is the reading."""
    steps = [(0.0, snap(queue("push", 3, 12))), (30.0, snap(queue("push", 3, 12))),
             (60.0, snap(queue("push", 3, 12))), (90.0, snap(queue("push", 3, 30))),
             (150.0, snap(queue("push", 3, 31)))]
    ticks = run(steps, with_rule(UP))[1]
    pushes = [(f.severity, f.since, f.value) for t in ticks for f in t]
    expected = [(Severity.WARNING, 60.0, 12.0), (Severity.WARNING, 60.0, 30.0),
                (Severity.CRITICAL, 60.0, 31.0)]
    assert expected == pushes


# --- flap holding ---------------------------------------------------------------------------

QUICK = Rule(warning=10, critical=20)


def flappy(values: list[float]) -> str:
    """Letters for queue:push over ticks of 60 s; no for/clear holds, flapping > 2 in 600 s."""
    rules = dataclasses.replace(with_rule(QUICK), flap_window_s=600, flap_changes=2)
    steps = [(60.0 * i, snap(queue("push", 3, v))) for i, v in enumerate(values)]
    return letters(run(steps, rules)[1], "queue:push")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([15, 0, 15, 0] + [0] * 10, "WO" + "w" * 11 + "O", id="held-until-stable"),
        pytest.param([25, 0, 15, 0] + [0] * 10, "CO" + "c" * 11 + "O", id="held-at-highest"),
        pytest.param([15, 0, 15] + [15] * 10, "WOw" + "w" * 9 + "W",
                     id="released-at-current-level"),
        pytest.param([15, 0] + [0] * 9 + [15], "WO" + "O" * 9 + "W", id="two-changes-are-fine"),
        pytest.param([15, 0, 15, 0, 15, 0, 25, 0] + [0] * 10, "WOwwwwcc" + "c" * 9 + "O",
                     id="worse-while-flapping-raises-hold"),
        pytest.param([15, 0, 15, 0, 0, 0, 0, 0, 0, 0, 15, 0] + [0] * 10,
                     "WO" + "w" * 9 + "wwww" + "w" * 6 + "O",
                     id="change-while-held-extends-hold"),
    ],
)
def test_flapping(values: list[float], expected: str) -> None:
    """More than flap_changes changes within the window hold the worst recent severity."""
    assert expected == flappy(values)


def test_flapping_keeps_since_and_says_why() -> None:
    """A held finding keeps its since and says it is flapping and until when."""
    rules = dataclasses.replace(with_rule(QUICK), flap_window_s=600, flap_changes=2)
    values = [15, 0, 15, 0, 0]
    steps = [(60.0 * i, snap(queue("push", 3, v))) for i, v in enumerate(values)]
    last = found(run(steps, rules)[1][-1], "queue:push")
    expected = (120.0, "push latency 0 s (warning at 10 s), 3 jobs; flapping: held at warning "
                "until stable for 10 min")
    assert expected == (last.since, last.reason)


def test_default_flap_holding() -> None:
    """With default rules, the 5th change within an hour is held: the queue stays critical."""
    high, low = snap(queue("default", 9, 400)), snap(queue("default", 0, 0))
    steps: list[Step] = []
    now = 0.0
    for _ in range(3):  # each cycle: 120 s to fire, 300 s to clear
        steps += [(now, high), (now + 120, high), (now + 150, low), (now + 450, low)]
        now += 480
    out = letters(run(steps)[1], "queue:default")
    expected = "OCCO" + "OCCO" + "Occc"
    assert expected == out


# --- root causes --------------------------------------------------------------------------

PUSH_SLOW = snap(queue("push", 10, 2000))
PUSH_OK = snap(queue("push", 0, 0))


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [(0, PUSH_SLOW), (120, PUSH_SLOW), (150, down()), (180, down()), (210, PUSH_OK),
             (270, PUSH_OK)],
            [(), ("queue:push=C",), ("queue:push=C/redis unreachable",),
             ("redis=C", "queue:push=C/redis unreachable"), ("redis=C", "queue:push=C"),
             ("queue:push=C",)],
            id="redis-mutes-and-freezes-queues"),
        pytest.param(
            [(0, PUSH_SLOW), (60, down()), (90, down()), (200, PUSH_SLOW)],
            [(), (), ("redis=C",), ("redis=C", "queue:push=C")],
            id="pending-queue-fires-after-redis-returns"),
        pytest.param(
            [(0, PUSH_OK), (20, down()), (40, down()), (50, down()), (90, PUSH_OK),
             (150, PUSH_OK)],
            [(), (), ("redis=W",), ("redis=C",), ("redis=C",), ()],
            id="redis-levels-and-clear"),
        pytest.param(
            [(0, snap(dead=10)), (30, down()), (60, snap(dead=700))],
            [(), (), ("dead=C",)],
            id="dead-counted-on-return"),
    ],
)
def test_redis_root_cause(steps: list[Step], expected: list[tuple[str, ...]]) -> None:
    """Redis unreachable fires after 30 s and freezes and mutes the Sidekiq components."""
    assert expected == briefs(run(steps)[1])


def test_frozen_finding_keeps_value_and_reason() -> None:
    """While Redis is down a queue finding repeats its last reading instead of inventing one."""
    ticks = run([(0, PUSH_SLOW), (120, PUSH_SLOW), (150, down())])[1]
    before, during = found(ticks[1], "queue:push"), found(ticks[2], "queue:push")
    assert dataclasses.replace(before, muted="redis unreachable") == during


def unserved_push(live: int = 1, paused: bool = False, latency: float = 10) -> Snapshot:
    return snap(queue("push", 5, latency, served=False, paused=paused), live=live)


SERVED_PUSH = snap(queue("push", 5, 10, served=True))


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [(0, unserved_push()), (30, unserved_push()), (60, unserved_push()),
             (90, SERVED_PUSH), (150, SERVED_PUSH)],
            [(), ("unserved:push=W",), ("unserved:push=C",), ("unserved:push=C",), ()],
            id="queue-with-jobs-and-no-process"),
        pytest.param(
            [(0, snap(queue("push", 0, 0, served=False))),
             (60, snap(queue("push", 0, 0, served=False)))],
            [(), ()], id="empty-unserved-queue-is-fine"),
        pytest.param(
            [(0, unserved_push(paused=True)), (60, unserved_push(paused=True))],
            [(), ()], id="paused-queue-is-not-unserved"),
        pytest.param(
            [(0, unserved_push(latency=400)), (60, unserved_push(latency=400)),
             (120, unserved_push(latency=400))],
            [(), ("unserved:push=C",),
             ("unserved:push=C", "queue:push=W/no live process serves push")],
            id="unserved-mutes-its-latency"),
        pytest.param(
            [(0, unserved_push(0, latency=400)), (30, unserved_push(0, latency=400)),
             (120, unserved_push(0, latency=400))],
            [(), ("unserved:push=W/no live Sidekiq process", "unserved:*=W"),
             ("unserved:push=C/no live Sidekiq process", "unserved:*=C",
              "queue:push=W/no live Sidekiq process")],
            id="no-process-at-all-mutes-the-rest"),
        pytest.param(
            [(0, snap(live=0, stale=1)), (60, snap(live=0, stale=1)), (90, snap(live=2)),
             (150, snap(live=2))],
            [(), ("unserved:*=C",), ("unserved:*=C",), ()],
            id="no-process-and-no-queues"),
        pytest.param(
            [(0, unserved_push()), (60, unserved_push()), (90, snap()), (150, snap())],
            [(), ("unserved:push=C",), ("unserved:push=C",), ()],
            id="queue-that-disappears-clears"),
    ],
)
def test_unserved(steps: list[Step], expected: list[tuple[str, ...]]) -> None:
    """A queue with jobs and no live process, or no live process at all, fires; roots mute."""
    assert expected == briefs(run(steps)[1])


# --- host, dead set, instance -------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([(0, snap(machine=host(4))), (60, snap(machine=host(4)))],
                     [(), ("memory=C",)], id="memory-low"),
        pytest.param([(0, snap(machine=host(4))), (60, snap()), (90, snap(machine=host(4)))],
                     [(), (), ("memory=C",)], id="no-host-reading-changes-nothing"),
        pytest.param([(0, snap(machine=host(4))), (60, snap(machine=host(4))), (90, snap())],
                     [(), ("memory=C",), ("memory=C",)], id="no-host-reading-keeps-finding"),
        pytest.param([(0, snap(machine=host(swap=85))), (300, snap(machine=host(swap=85)))],
                     [(), ("swap=C",)], id="swap-high"),
        pytest.param([(0, snap(machine=host(swap=85, swap_total=0))),
                      (300, snap(machine=host(swap=85, swap_total=0)))],
                     [(), ()], id="no-swap-is-zero-percent"),
        pytest.param([(0, snap(machine=host(50, total=0))), (300, snap(machine=host(50, total=0)))],
                     [(), ()], id="no-memory-total-is-unknown"),
    ],
)
def test_host(steps: list[Step], expected: list[tuple[str, ...]]) -> None:
    """Memory available and swap used fire after their for_s; a missing reading changes nothing."""
    assert expected == briefs(run(steps)[1])


@pytest.mark.parametrize(
    ("dead", "expected"),
    [
        pytest.param([(0, 100), (600, 150), (1200, 200)], [0, 50, 100], id="grows"),
        pytest.param([(0, 100), (600, 150), (1200, 90), (1800, 120)], [0, 50, 50, 80],
                     id="trimmed-never-negative"),
        pytest.param([(0, 500), (600, 0), (1200, 10)], [0, 0, 10], id="cleared-by-admin"),
        pytest.param([(0, 0), (1800, 100), (3600, 100), (3700, 100)], [0, 100, 100, 0],
                     id="hour-slides"),
        pytest.param([(0, 0), (60, 5), (120, 10), (400, 10)], [0, 5, 10, 10],
                     id="counted-between-samples"),
    ],
)
def test_dead_growth(dead: list[tuple[float, int]], expected: list[float]) -> None:
    """Jobs added to the dead set within the last hour; removals add nothing."""
    rules = dataclasses.replace(default_rules(), dead_growth_per_hour=Rule(0, 1e9))
    ticks = run([(now, snap(dead=count)) for now, count in dead], rules)[1]
    assert expected == [found(t, "dead").value for t in ticks]


def test_dead_growth_reason() -> None:
    """The dead finding says how many jobs died over which span."""
    ticks = run([(0, snap(dead=10)), (300, snap(dead=600))])[1]
    expected = "dead set grew by 590 jobs in 300 s (critical at 500), 600 dead in all"
    assert expected == found(ticks[1], "dead").reason


def web(ok: bool | None, error: str | None = None) -> InstanceHealth:
    return InstanceHealth(web_ok=ok, streaming_ok=True, web_error=error)


def streaming(ok: bool | None) -> InstanceHealth:
    return InstanceHealth(web_ok=True, streaming_ok=ok,
                          streaming_error=None if ok else "HTTP 502")


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [(0, snap(), web(False)), (60, snap(), web(False)), (90, snap(), web(False)),
             (120, snap(), None), (130, snap(), web(None)), (150, snap(), web(True)),
             (210, snap(), web(True)), (270, snap(), web(True))],
            [(), ("web=W",), ("web=C",), ("web=C",), ("web=C",), ("web=C",), ("web=C",), ()],
            id="web-down-unknown-and-back"),
        pytest.param(
            [(0, snap(), web(False)), (30, snap(), web(True)), (60, snap(), web(False)),
             (90, snap(), web(False))],
            [(), (), (), ()], id="web-blips-are-not-down"),
        pytest.param(
            [(0, snap(), streaming(False)), (120, snap(), streaming(False)),
             (900, snap(), streaming(False))],
            [(), ("streaming=W",), ("streaming=C",)], id="streaming-down"),
        pytest.param(
            [(0, snap(), web(False)), (60, snap()), (90, snap(), web(False))],
            [(), (), ("web=C",)], id="not-probed-keeps-onset"),
    ],
)
def test_instance(steps: list[Step], expected: list[tuple[str, ...]]) -> None:
    """/health and streaming health fire after failing long enough; unknown changes nothing."""
    assert expected == briefs(run(steps)[1])


# --- reasons and estimates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "component", "expected"),
    [
        pytest.param([(0, snap(queue("push", 5234, 312))), (120, snap(queue("push", 5234, 312)))],
                     "queue:push", "push latency 312 s (warning at 300 s), 5,234 jobs",
                     id="queue-warning"),
        pytest.param([(0, snap(queue("push", 5, 2000))), (120, snap(queue("push", 5, 2000)))],
                     "queue:push", "push latency 33 min (critical at 30 min), 5 jobs",
                     id="queue-critical"),
        pytest.param([(0, snap(queue("pull", 5, 9000, paused=True))),
                      (120, snap(queue("pull", 5, 9000, paused=True)))],
                     "queue:pull", "pull latency 150 min (critical at 120 min), 5 jobs, paused",
                     id="queue-paused"),
        pytest.param([(0, snap(queue("push", 3, 2000))), (120, snap(queue("push", 3, 2000))),
                      (180, snap(queue("push", 3, 100)))],
                     "queue:push", "push latency 100 s (critical at 30 min, held: clears after "
                     "300 s below 150 s), 3 jobs", id="queue-held-clearing"),
        pytest.param([(0, snap(queue("push", 3, 2000))), (120, snap(queue("push", 3, 2000))),
                      (180, snap(queue("push", 3, 200)))],
                     "queue:push", "push latency 200 s (critical at 30 min, held: steps down "
                     "after 300 s below 30 min), 3 jobs", id="queue-held-stepping-down"),
        pytest.param([(0, snap(queue("push", 3, 400))), (120, snap(queue("push", 3, 400))),
                      (180, snap(queue("push", 3, 200)))],
                     "queue:push", "push latency 200 s (warning at 300 s, held until below "
                     "150 s), 3 jobs", id="queue-held-in-band"),
        pytest.param([(0, snap(queue("push", 3, 400))), (120, snap(queue("push", 3, 400))),
                      (180, snap(queue("push", 3, 2000)))],
                     "queue:push", "push latency 33 min (warning at 300 s; critical at 30 min "
                     "if it lasts 120 s), 3 jobs", id="queue-critical-pending"),
        pytest.param([(0, snap(machine=host(4))), (60, snap(machine=host(4)))], "memory",
                     "memory available 4% (critical at 5%), 0.6 GiB of 16.0 GiB", id="memory"),
        pytest.param([(0, snap(machine=host(swap=85))), (300, snap(machine=host(swap=85)))],
                     "swap", "swap used 85% (critical at 80%), 3.4 GiB of 4.0 GiB", id="swap"),
        pytest.param([(0, down()), (45, down())], "redis",
                     "Redis unreachable for 45 s (critical at 30 s): ConnectionError: refused",
                     id="redis"),
        pytest.param([(0, down()), (45, down()), (60, snap())], "redis",
                     "Redis reachable again (critical at 30 s, held: clears after 60 s below "
                     "15 s)", id="redis-back"),
        pytest.param([(0, unserved_push()), (75, unserved_push())], "unserved:push",
                     "no live process serves push for 75 s (critical at 60 s), 5 jobs waiting",
                     id="unserved"),
        pytest.param([(0, snap(live=0, stale=2)), (60, snap(live=0, stale=2))], ALL_UNSERVED,
                     "no live Sidekiq process for 60 s (critical at 60 s), 2 stale, "
                     "0 jobs waiting", id="no-process"),
        pytest.param([(0, snap(), web(False, "HTTP 502")), (95, snap(), web(False, "HTTP 502"))],
                     "web", "/health failing for 95 s (critical at 90 s): HTTP 502", id="web"),
    ],
)
def test_reason(steps: list[Step], component: str, expected: str) -> None:
    """Reasons are technical one-liners for admins: value, threshold, why it is held."""
    assert expected == found(run(steps)[1][-1], component).reason


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        pytest.param([(0, 1000), (60, 800), (120, 600)], 180.0, id="shrinking"),
        pytest.param([(0, 100), (60, 200)], None, id="growing"),
        pytest.param([(0, 100), (60, 100)], None, id="steady"),
        pytest.param([(0, 100)], None, id="first-reading"),
        pytest.param([(0, 1000), (30, 900)], 270.0, id="between-samples"),
        pytest.param([(0, 1000), (60, 900), (120, 800), (180, 700), (240, 600)], 360.0,
                     id="oldest-kept-sample"),
        pytest.param([(0, 1000), (60, 0)], 0.0, id="caught-up"),
    ],
)
def test_eta(sizes: list[tuple[float, int]], expected: float | None) -> None:
    """A shrinking queue's finding estimates when it will be empty; otherwise None."""
    rules = with_rule(Rule(0, 1e9))
    ticks = run([(now, snap(queue("push", size, 5))) for now, size in sizes], rules)[1]
    assert expected == found(ticks[-1], "queue:push").eta_s


# --- mutes --------------------------------------------------------------------------------

MAINTENANCE = Mute(100, 200, ("queue:*", "redis"), "maintenance: database upgrade")
SILENCE = Mute(0, 1000, (), "silenced by alice until 00:16")


@pytest.mark.parametrize(
    ("mute", "now", "component", "expected"),
    [
        pytest.param(MAINTENANCE, 100, "queue:push", True, id="start-included"),
        pytest.param(MAINTENANCE, 199.9, "redis", True, id="inside"),
        pytest.param(MAINTENANCE, 200, "queue:push", False, id="end-excluded"),
        pytest.param(MAINTENANCE, 99, "queue:push", False, id="before"),
        pytest.param(MAINTENANCE, 150, "unserved:push", False, id="other-component"),
        pytest.param(MAINTENANCE, 150, "Queue:push", False, id="case-sensitive"),
        pytest.param(SILENCE, 500, "anything", True, id="empty-covers-all"),
    ],
)
def test_mute_applies(mute: Mute, now: float, component: str, expected: bool) -> None:
    """A mute applies from start to end (excluded) to the components its patterns match."""
    assert expected == (mute.active(now) and mute.covers(component))


@pytest.mark.parametrize(
    ("mute", "expected"),
    [
        pytest.param(MAINTENANCE, [], id="fine"),
        pytest.param(Mute(5, 5, (), " "), ["the end must be after the start",
                                           "a reason is needed (it is shown instead of the "
                                           "announcement)"], id="empty"),
    ],
)
def test_mute_validate(mute: Mute, expected: list[str]) -> None:
    """A mute must end after it starts and say why."""
    assert expected == mute.validate()


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [(0, PUSH_SLOW), (120, PUSH_SLOW), (150, PUSH_SLOW), (200, PUSH_SLOW)],
            [(), ("queue:push=C/maintenance: database upgrade",),
             ("queue:push=C/maintenance: database upgrade",), ("queue:push=C",)],
            id="window-mutes-while-active"),
        pytest.param(
            [(100, down()), (130, down()), (160, PUSH_SLOW)],
            [(), ("redis=C/maintenance: database upgrade",),
             ("redis=C/maintenance: database upgrade",)],
            id="maintenance-covers-redis"),
        pytest.param(
            [(0, PUSH_SLOW), (120, PUSH_SLOW), (130, down()), (160, down())],
            [(), ("queue:push=C/maintenance: database upgrade",),
             ("queue:push=C/maintenance: database upgrade",),
             ("redis=C/maintenance: database upgrade",
              "queue:push=C/maintenance: database upgrade")],
            id="mute-wins-over-root-cause"),
    ],
)
def test_mutes(steps: list[Step], expected: list[tuple[str, ...]]) -> None:
    """A finding a mute covers is still judged but carries the mute's reason."""
    assert expected == briefs(run(steps, mutes=[MAINTENANCE])[1])


# --- state --------------------------------------------------------------------------------


def busy_history(ticks: int) -> list[Step]:
    """A long, eventful history: flapping queues, dead growth, memory, outages, health."""
    steps: list[Step] = []
    for i in range(ticks):
        high = (i // 7) % 2 == 0
        snapshot = down() if i % 53 == 50 else snap(
            queue("default", 100 - i % 100, 400 if high else 0),
            queue("push", i % 13, 2000 if i % 5 else 0, served=i % 3 != 0),
            queue(f"q{i % 40}", 1, 700),
            live=0 if i % 97 == 90 else 1, dead=i * 3,
            machine=host(4 if high else 60, 90 if high else 10))
        steps.append((30.0 * i, snapshot, web(i % 11 > 5)))
    return steps


def test_state_round_trips_through_json() -> None:
    """to_json → JSON text → from_json gives an equal state, at every tick."""
    state = HealthState.initial()
    rules = dataclasses.replace(default_rules(), flap_window_s=600)
    for now, snapshot, *rest in busy_history(300):
        state, _ = evaluate(snapshot, state, rules, now, instance=rest[0] if rest else None)
        assert state == HealthState.from_json(json.loads(json.dumps(state.to_json())))
    assert any(c.flapping for c in state.components.values())


def test_state_stays_bounded() -> None:
    """Samples, changes and components stay bounded however long the bot runs."""
    state = HealthState.initial()
    largest = [0, 0, 0, 0]
    for now, snapshot, *rest in busy_history(3000):
        state, _ = evaluate(snapshot, state, default_rules(), now,
                            instance=rest[0] if rest else None)
        sizes = (max((len(s) for s in state.queue_samples.values()), default=0),
                 len(state.dead_samples),
                 max((len(c.changes) for c in state.components.values()), default=0),
                 len(state.components))
        largest = [max(a, b) for a, b in zip(largest, sizes, strict=True)]
    # At most: 4 samples a queue, 13 dead samples a hour, flap_changes + 1 changes, and
    # for 42 queues a queue: and an unserved: component, plus the 7 others.
    expected = [4, 13, 5, True]
    assert expected == [*largest[:3], largest[3] <= 2 * 42 + 7]


def test_idle_components_are_forgotten() -> None:
    """Once everything is fine and stable again, no component state is kept."""
    steps = [*busy_history(200)]
    steps += [(30.0 * 200 + 60 * i, snap(queue("default", 0, 0), machine=host()), web(True))
              for i in range(150)]
    state, ticks = run(steps)
    expected: tuple[dict[str, Any], tuple[Finding, ...]] = ({}, ())
    assert expected == (state.components, ticks[-1])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({"version": 2}, "health state version 2, expected 1", id="version"),
        pytest.param({"dead_added": "7"}, "expected a whole number, got '7'", id="type"),
        pytest.param({"dead_samples": [[1.0]]}, "expected a list of pairs, got [[1.0]]",
                     id="pairs"),
        pytest.param({"components": {"redis": {"level": 1}}}, "expected the keys", id="keys"),
    ],
)
def test_state_from_bad_json(change: dict[str, Any], expected: str) -> None:
    """Unreadable state is a ValueError (the loop then starts afresh), never a wrong state."""
    data = {**HealthState.initial().to_json(), **change}
    with pytest.raises(ValueError, match="^" + expected.replace("[", r"\["
                                                                ).replace("]", r"\]")):
        HealthState.from_json(data)


def test_bad_severity_in_json() -> None:
    """A severity outside OK..CRITICAL is refused."""
    state, _ = run([(0, down()), (30, down())])
    data = state.to_json()
    data["components"]["redis"]["shown"] = 7
    with pytest.raises(ValueError, match="expected a severity"):
        HealthState.from_json(data)


def test_unserved_rule_per_queue() -> None:
    """A queue can have its own unserved rule (pull may wait longer than push)."""
    rules, problems = rules_from_config(
        {"unserved_queue": {"pull": {"warning": 600, "critical": "20m"}}},
        duration=parse_duration)
    assert problems == []
    assert (rules.unserved_rule("pull").warning, rules.unserved_rule("pull").critical) == (
        600.0, 1200.0)
    assert rules.unserved_rule("push") == default_rules().unserved
    steps: list[Step] = [(float(t), snap(queue("push", served=False), queue("pull", served=False)))
                         for t in (0, 120)]
    _, ticks = run(steps, rules)
    assert letters(ticks, "unserved:push") == "OC"
    assert letters(ticks, "unserved:pull") == "OO"


def test_unserved_rule_per_queue_is_validated() -> None:
    """Problems in a per-queue unserved rule name the queue."""
    _, problems = rules_from_config({"unserved_queue": {"pull": {"warning": 900,
                                                                 "critical": 600}}})
    assert problems == ["unserved_queue.pull: warning (900) must be below critical (600)"]


def test_no_trace_of_sidekiq_is_not_announced() -> None:
    """An empty Redis (wrong URL, DB or namespace) mutes 'no process', it is no outage."""
    empty = Snapshot(collected_at=0.0, redis=RedisStats("redis://r:6379/5", "", True),
                     sidekiq=sidekiq(live=0), host=None, host_error="test: no host")
    _, ticks = run([(0.0, empty), (120.0, empty)])
    assert briefs(ticks)[-1] == (f"unserved:*=C/{NO_SIDEKIQ_MUTE}",)
    _, ticks = run([(0.0, snap(queue("push", size=0), live=0)),
                    (120.0, snap(queue("push", size=0), live=0))])
    assert briefs(ticks)[-1] == ("unserved:*=C",)


# --- many queues: bounded state and work ---------------------------------------------------

STAR = rules_from_config({"queue_latency": {"*": {"warning": 60, "critical": 300, "for": 0}}})[0]


def many(count: int, *, slow: str = "", unserved: str = "") -> Snapshot:
    """``count`` queues at 2 min latency; ``slow`` at 10 min; ``unserved`` has no process."""
    return snap(*(queue(name, 10, 600.0 if name == slow else 120.0,
                        served=name != unserved)
                  for name in (f"q{i:05d}" for i in range(count))))


@pytest.mark.parametrize("count", [pytest.param(n, id=f"{n}-queues") for n in (100, 10_000)])
def test_many_queues_keep_state_and_findings_bounded(count: int) -> None:
    """However many queues Redis lists, the state and the findings stay small."""
    state, findings = evaluate(many(count), HealthState.initial(), STAR, 0.0)
    state, findings = evaluate(many(count), state, STAR, 30.0)
    size = len(json.dumps(state.to_json()))
    assert (size < 64_000, len(findings) <= 60) == (True, True), (size, len(findings))


@pytest.mark.parametrize(
    ("snapshot", "component", "reason"),
    [
        pytest.param(many(200, slow="q00199"), "queue:(others)", "150 other queues, worst "
                     "q00199 latency 10 min", id="slow-queue-beyond-the-cap"),
        pytest.param(many(200, unserved="q00150"), "unserved:(others)",
                     "no live process serves 1 other queues (e.g. q00150) for", id="unserved"),
    ],
)
def test_queues_beyond_the_cap_are_judged_together(snapshot: Snapshot, component: str,
                                                   reason: str) -> None:
    """A queue beyond the first 50 still raises a finding, on the component of the others."""
    state, _ = evaluate(snapshot, HealthState.initial(), STAR, 0.0)
    _, findings = evaluate(snapshot, state, STAR, 400.0)
    found = {f.component: f for f in findings}
    assert component in found and found[component].reason.startswith(reason), sorted(found)


def test_own_rule_and_mastodon_queues_are_always_tracked() -> None:
    """Queues with a rule of their own and Mastodon's queues come before any others."""
    rules = rules_from_config({"queue_latency": {
        "*": {"warning": 60, "critical": 300, "for": 0},
        "zzz-own": {"warning": 60, "critical": 300, "for": 0}}})[0]
    queues = [queue(f"q{i:05d}", 1, 120.0) for i in range(100)]
    queues += [queue("zzz-own", 1, 120.0), queue("push", 1, 86_400.0)]
    state, _ = evaluate(snap(*queues), HealthState.initial(), rules, 0.0)
    _, findings = evaluate(snap(*queues), state, rules, 200.0)
    components = {f.component for f in findings}
    assert {"queue:zzz-own", "queue:push", "queue:(others)"} <= components


@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param("@mallory", "Error connecting to @mallory@evil.example", id="mentions"),
        pytest.param("\x1b[31mred\x1b]0;title\x07", "\x1b[2J\u202eboom", id="escapes"),
        pytest.param("x" * 100_000, "e" * 100_000, id="100k"),
    ],
)
def test_reasons_carry_neutral_names(name: str, error: str) -> None:
    """Queue names and errors enter reasons neutralised: safe in logs, terminals and posts."""
    rules = rules_from_config({"queue_latency": {"*": {"warning": 60, "critical": 300,
                                                       "for": 0}}})[0]
    _, findings = evaluate(snap(queue(name, 5, 600.0)), HealthState.initial(), rules, 0.0)
    state, _ = evaluate(down(error), HealthState.initial(), rules, 0.0)
    _, outage = evaluate(down(error), state, rules, 10_000.0)
    reasons = [f.reason for f in (*findings, *outage)]
    assert ([f.component for f in (*findings, *outage)][-2:],
            [r for r in reasons if "@" in r or "\x1b" in r or "\u202e" in r
             or len(r) > 600]) == (["queue:" + name, "redis"], []), reasons
