"""Tests of the capacity advisor: arithmetic, limits, idle resources, wording, hostile input."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re

import pytest

from bot.advice import (
    AdviceInputs,
    Database,
    FitKind,
    GiB,
    Limit,
    LiveProcess,
    MiB,
    NoChange,
    Peaks,
    Policy,
    QueueWork,
    advise,
    catch_up_seconds,
    count_text,
    duration_text,
    fit_memory,
    memory_text,
    render,
    serving_threads,
    threads_needed,
)
from bot.wording import DEFAULT_WORDING

PUSH = QueueWork("push", backlog=4200, growth_per_min=120, done_per_min=300, mean_job_s=2.0)
DEFAULT_IDLE = QueueWork("default", backlog=0, growth_per_min=0, done_per_min=600, mean_job_s=0.2)


def proc(identity: str, concurrency: int, queues: tuple[tuple[str, int], ...],
         rss_mib: float | None = None, busy: int = 0) -> LiveProcess:
    return LiveProcess(identity, concurrency, busy, queues,
                       None if rss_mib is None else int(rss_mib * MiB))


def linear(base_mib: float, per_thread_mib: float, *concurrencies: int) -> tuple[LiveProcess, ...]:
    return tuple(proc(f"h:{c}", c, (("pull", 0),), base_mib + per_thread_mib * c)
                 for c in concurrencies)


LAYOUT = (proc("web:1", 10, (("default", 0), ("push", 0), ("pull", 0)), 300, busy=10),
          proc("web:2", 25, (("pull", 0),), 450, busy=2),
          proc("web:3", 5, (("push", 2), ("mailers", 1)), 260, busy=5))


def inputs(**changes: object) -> AdviceInputs:
    base = AdviceInputs(queues=(PUSH, DEFAULT_IDLE), processes=LAYOUT,
                        memory_available_bytes=int(2.1 * GiB))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- arithmetic ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrivals", "mean_s", "margin", "expected"),
    [
        pytest.param(120, 2.0, 1.25, 5.0, id="little-with-margin"),
        pytest.param(60, 1.0, 1.0, 1.0, id="one-a-second-one-second"),
        pytest.param(600, 0.5, 1.5, 7.5, id="margin-1.5"),
        pytest.param(0, 3.0, 1.25, 0.0, id="no-arrivals"),
        pytest.param(-50, 3.0, 1.25, 0.0, id="negative-arrivals-are-none"),
        pytest.param(60, 1.0, 0.5, 1.0, id="margin-below-one-is-one"),
    ],
)
def test_threads_needed_is_littles_law_times_margin(
        arrivals: float, mean_s: float, margin: float, expected: float) -> None:
    """Threads needed = arrivals a second * mean job time * margin (at least 1)."""
    assert threads_needed(arrivals, mean_s, margin) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("backlog", "capacity", "arrivals", "expected"),
    [
        pytest.param(4200, 570, 420, 1680.0, id="spare-150-a-minute"),
        pytest.param(100, 100, 40, 100.0, id="spare-60"),
        pytest.param(100, 420, 420, None, id="capacity-equals-arrivals"),
        pytest.param(100, 300, 420, None, id="capacity-below-arrivals"),
        pytest.param(0, 10, 1, 0.0, id="nothing-waiting"),
        pytest.param(10, math.inf, 1, None, id="infinite-capacity-is-no-answer"),
    ],
)
def test_catch_up_time(backlog: float, capacity: float, arrivals: float,
                       expected: float | None) -> None:
    """Backlog / (capacity - arrivals), never when capacity does not exceed arrivals."""
    assert catch_up_seconds(backlog, capacity, arrivals) == (
        None if expected is None else pytest.approx(expected))


# --- memory fit ------------------------------------------------------------------------------


def test_fit_exact_line() -> None:
    """Processes on an exact line give its base and slope, R² 1 and no residual."""
    fit = fit_memory(linear(200, 12, 5, 10, 25))
    assert (fit.kind, fit.n, fit.guess) == (FitKind.FITTED, 3, False)
    assert fit.base_bytes == pytest.approx(200 * MiB)
    assert fit.per_thread_bytes == pytest.approx(12 * MiB)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.rmse_bytes == pytest.approx(0.0, abs=1)


def test_fit_noisy_line_says_how_sure() -> None:
    """Noise of a few MB keeps the slope close, lowers R² below 1 and shows a residual."""
    noise = (6, -4, 3, -7, 2, 5)
    processes = tuple(proc(f"h:{i}", c, (("pull", 0),), 200 + 10 * c + n)
                      for i, (c, n) in enumerate(zip((5, 10, 15, 20, 25, 30), noise, strict=True)))
    fit = fit_memory(processes)
    assert fit.kind is FitKind.FITTED
    assert fit.per_thread_bytes == pytest.approx(10 * MiB, rel=0.1)
    assert fit.r2 is not None and 0.9 < fit.r2 < 1.0
    assert fit.rmse_bytes is not None and 1 * MiB < fit.rmse_bytes < 8 * MiB
    assert fit.uncertainty(300 * MiB) == pytest.approx(2 * fit.rmse_bytes)


@pytest.mark.parametrize(
    ("processes", "kind", "base_mib", "per_thread_mib"),
    [
        pytest.param(linear(200, 12, 25), FitKind.ONE_PROCESS, 500 - 250, 10, id="single-process"),
        pytest.param(linear(200, 12, 10, 10, 10), FitKind.SAME_CONCURRENCY, 320 - 100, 10,
                     id="equal-concurrency"),
        pytest.param((proc("a", 5, ()), proc("b", 10, ())), FitKind.NO_DATA, 250, 10,
                     id="no-rss"),
        pytest.param((proc("a", 5, (), 600), proc("b", 25, (), 300)), FitKind.IMPLAUSIBLE,
                     250, 10, id="memory-falls-with-threads"),
        pytest.param((), FitKind.NO_DATA, 250, 10, id="no-process"),
    ],
)
def test_fit_falls_back_to_a_stated_guess(processes: tuple[LiveProcess, ...], kind: FitKind,
                                          base_mib: float, per_thread_mib: float) -> None:
    """Without a spread of concurrencies the cost is the documented default, marked a guess."""
    fit = fit_memory(processes)
    assert (fit.kind, fit.guess) == (kind, True)
    assert (fit.base_bytes / MiB, fit.per_thread_bytes / MiB) == pytest.approx(
        (base_mib, per_thread_mib))
    assert fit.uncertainty(400 * MiB) == pytest.approx(100 * MiB)


def test_fit_line_in_the_text() -> None:
    """The advice says how the memory cost was found."""
    processes = (*linear(200, 12, 5, 10, 25), proc("p", 5, (("push", 0),), 260))
    fitted = render(advise(inputs(processes=processes)))
    guessed = render(advise(inputs(processes=(proc("p", 10, (("push", 0),), 400),))))
    assert [line for line in fitted if line.startswith("Memory cost")] == [
        "Memory cost fitted from 4 processes: 200 MB + 12 MB a thread (R² 1.00, ±1 MB)."]
    assert [line for line in guessed if line.startswith("Memory cost")] == [
        "Memory cost is a guess (only one process seen): 300 MB + 10 MB a thread."]


# --- fetch order ---------------------------------------------------------------------------


WORK = {"default": QueueWork("default", 0, 0, 600, 0.2),  # steady need: 2 threads
        "push": QueueWork("push", 500, 10, 100, 1.0),
        "pull": QueueWork("pull", 200, 0, 30, 2.0)}


@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        pytest.param((("default", 0), ("push", 0), ("pull", 0)),
                     {"default": 2.0, "push": 8.0, "pull": 0.0}, id="strict-first-empty"),
        pytest.param((("push", 0), ("default", 0)), {"push": 10.0, "default": 0.0},
                     id="strict-backlog-first-takes-all"),
        pytest.param((("pull", 0), ("push", 0)), {"pull": 10.0, "push": 0.0},
                     id="strict-later-gets-nothing"),
        pytest.param((("push", 3), ("pull", 1)), {"push": 7.5, "pull": 2.5}, id="weighted-3-1"),
        pytest.param((("push", 1), ("pull", 1)), {"push": 5.0, "pull": 5.0}, id="random-equal"),
        pytest.param((("default", 1), ("push", 3), ("pull", 1)),
                     {"default": 2.0, "push": 6.0, "pull": 2.0}, id="weighted-idle-takes-its-need"),
        pytest.param((("push", 0), ("push", 0)), {"push": 10.0}, id="repeated-name"),
        pytest.param((("mailers", 0), ("push", 0)), {"mailers": 0.0, "push": 10.0},
                     id="unknown-queue-needs-nothing"),
    ],
)
def test_threads_serving_follow_sidekiq_order(queues: tuple[tuple[str, int], ...],
                                              expected: dict[str, float]) -> None:
    """Strict order starves queues after one with a backlog; weights share what is left."""
    process = proc("p", 10, queues)
    got = serving_threads(process, WORK, {})
    assert got == pytest.approx(expected)
    assert process.strict == all(weight == 0 for _, weight in queues)


def test_steady_need_is_split_among_processes() -> None:
    """A queue served by two processes takes half its steady need from each."""
    got = serving_threads(proc("p", 10, (("default", 0), ("push", 0))), WORK, {"default": 2})
    assert got == pytest.approx({"default": 1.0, "push": 9.0})


# --- the answer for a queue behind ----------------------------------------------------------


def test_queue_behind_gets_a_change_that_fits() -> None:
    """The issue's example: needs, serving, a new process, its cost and its catch-up time."""
    advice = advise(inputs())
    (item,) = advice.behind
    assert (item.queue, item.arrivals_per_min) == ("push", 420)
    assert item.threads_needed == pytest.approx(420 / 60 * 2 * 1.25)
    assert item.threads_busy == pytest.approx(10.0)
    assert {s.identity: round(s.threads, 1) for s in item.serving} == {"web:1": 8.0, "web:3": 5.0}
    change = item.change
    assert change is not None
    # enough to catch up within 30 min: (420 + 4200/30) / 60 * 2 = 18.7 busy, 10 there
    assert (change.threads, change.queues, change.db_pool, change.limits) == (
        9, ("push", "default"), 9, ())
    assert change.catch_up_s == pytest.approx(4200 / (300 + 9 * 30 - 420) * 60)
    assert change.memory_bytes + change.memory_uncertainty_bytes <= 2.1 * GiB - 256 * MiB
    lines = render(advice)
    assert lines[0] == (
        "push: 4,200 waiting, +120 a minute. It needs about 18 busy threads (420 jobs a minute "
        "\N{MULTIPLICATION SIGN} 2 s a job \N{MULTIPLICATION SIGN} 1.25 margin); about 10 work "
        "on it now, on the process serving default, "
        "push, pull (about 8 of 10), the process serving push, mailers (about 5 of 5). One more "
        "process `bundle exec sidekiq -c 9 -q push -q default` would cost about 300 MB (2.1 GB "
        "available) and catch up in about 30 min. Set DB_POOL to at least 9 for it. I could "
        "not check the database connections (no [postgres] or DB_* in .env.production): make "
        "sure max_connections has room for 9 more.")


def test_threads_per_process_are_capped() -> None:
    """A huge need is cut to the most threads a process should run, and says why."""
    flood = QueueWork("ingress", 90_000, 2000, 1000, 1.5)
    advice = advise(inputs(queues=(flood,), memory_available_bytes=16 * GiB))
    change = advice.behind[0].change
    assert change is not None
    assert (change.threads, change.limits) == (25, (Limit.THREADS,))
    assert change.catch_up_s is None
    assert "would not catch up at this rate" in render(advice)[0]


def test_shrinking_fast_enough_needs_no_change() -> None:
    """A backlog that works itself off within the target gets no change."""
    draining = QueueWork("push", 3000, -200, 600, 0.5)
    advice = advise(inputs(queues=(draining,)))
    item = advice.behind[0]
    assert (item.change, item.no_change) == (None, NoChange.CATCHING_UP)
    assert render(advice)[0].endswith("It catches up in about 15 min at this rate; no change "
                                      "needed.")
    assert "\N{MINUS SIGN}200 a minute" in render(advice)[0]


def test_no_timings_no_sizing() -> None:
    """Without job times the advisor says it cannot size a change, instead of guessing."""
    advice = advise(inputs(queues=(QueueWork("push", 5000, 50, 0, 0.0),)))
    assert advice.behind[0].no_change is NoChange.NO_TIMINGS
    assert render(advice)[0] == ("push: 5,000 waiting, +50 a minute. Its job times are not "
                                 "known yet, so I cannot size a change for it.")


# --- limits: memory and database -------------------------------------------------------------


def test_memory_cuts_the_threads_to_what_fits() -> None:
    """With little memory the change shrinks until cost and uncertainty fit."""
    processes = linear(200, 10, 5, 10, 25)
    # 265 MB above the reserve: 6 threads cost 200 + 6 * 10 = 260 MB, 7 would cost 270 MB.
    advice = advise(inputs(processes=processes, memory_available_bytes=256 * MiB + 265 * MiB))
    change = advice.behind[0].change
    assert change is not None
    assert Limit.MEMORY in change.limits
    assert change.threads == 6
    assert change.memory_bytes + change.memory_uncertainty_bytes <= 265 * MiB


def test_nothing_fits_says_so_and_what_could_make_room() -> None:
    """Too little memory for one thread: no change, and the idle process that could give room."""
    peaks = Peaks(busy_by_process={"web:2": 3})
    advice = advise(inputs(memory_available_bytes=300 * MiB, peaks=peaks))
    item = advice.behind[0]
    assert (item.change, item.no_change) == (None, NoChange.NO_MEMORY)
    assert item.make_room is not None and item.make_room.identity == "web:2"
    text = render(advice)[0]
    assert "Nothing fits: one more process with a single thread needs about " in text
    assert "and 300 MB is available." in text
    assert ("To make room: fewer threads on the process serving pull (3 of 25 ever busy at "
            "once) would free about ") in text
    assert "bundle exec" not in text


@pytest.mark.parametrize(
    ("database", "threads", "no_change", "words"),
    [
        pytest.param(Database(100, 87), 5, None,
                     "max_connections is the limit: 100, 87 in use and 3 reserved leave room "
                     "for 5 more threads (keeping 5 spare); raise max_connections or put "
                     "PgBouncer in front for more.", id="max-connections-limit"),
        pytest.param(Database(100, 86, reserved=6), 3, None,
                     "max_connections is the limit: 100, 86 in use and 6 reserved leave room "
                     "for 3 more threads", id="reserved-read"),
        pytest.param(Database(100, 10), 9, None, None, id="enough-connections"),
        pytest.param(Database(60, 47, pgbouncer=True), 5, None,
                     "PostgreSQL behind PgBouncer has room for 5 more threads (60 max, 47 in "
                     "use, 3 reserved, 5 kept spare), but PgBouncer's pool, not "
                     "max_connections, may be the real limit", id="pgbouncer-limit"),
        pytest.param(Database(100, 92), None, NoChange.NO_CONNECTIONS,
                     "Nothing fits: max_connections is the limit: 100, 92 in use and 3 "
                     "reserved leave no connection for more threads (keeping 5 spare); raise "
                     "max_connections or put PgBouncer in front.", id="no-free-connections"),
        pytest.param(None, 9, None,
                     "I could not check the database connections (no [postgres] or DB_* in "
                     ".env.production): make sure max_connections has room for 9 more.",
                     id="not-checked"),
        pytest.param(Database.failed("connection refused by db:5432"), 9, None,
                     "I could not check the database connections (connection refused by "
                     "db:5432): make sure max_connections has room for 9 more.",
                     id="reading-failed"),
    ],
)
def test_never_more_threads_than_free_connections(
        database: Database | None, threads: int | None, no_change: NoChange | None,
        words: str | None) -> None:
    """Threads stay within the free connections (3 reserved, 5 spare), and the text says so."""
    advice = advise(inputs(database=database))
    item = advice.behind[0]
    assert item.no_change == no_change
    assert (None if item.change is None else item.change.threads) == threads
    text = render(advice)[0]
    if words is not None:
        assert words in text
    else:
        assert "max_connections" not in text and "PgBouncer" not in text


# --- idle resources and no backlog ----------------------------------------------------------


def test_no_backlog_is_one_line_plus_idle_findings() -> None:
    """No queue behind: one line, then the idle threads and the smaller server."""
    peaks = Peaks(memory_used_bytes=int(5.1 * GiB), memory_total_bytes=16 * GiB,
                  busy_by_process={"web:2": 3, "web:1": 9})
    advice = advise(inputs(queues=(DEFAULT_IDLE,), peaks=peaks))
    assert render(advice) == [
        "No queue is behind.",
        "Database connections not checked: no [postgres] or DB_* in .env.production.",
        "3 of 25 threads were ever busy at once on the process serving pull.",
        "Peak use 5.1 GB of 16 GB: a server with 8 GB would leave 2.9 GB.",
    ]


@pytest.mark.parametrize(
    ("peak_gb", "total_gb", "size"),
    [
        pytest.param(5.1, 16, 8, id="16-to-8"),
        pytest.param(1.2, 16, 2, id="16-to-2"),
        pytest.param(7.0, 16, None, id="8-would-be-too-tight"),
        pytest.param(14.0, 16, None, id="busy-server"),
        pytest.param(3.0, 2, None, id="peak-above-total-is-nonsense"),
        pytest.param(0.5, 1, None, id="nothing-smaller"),
    ],
)
def test_smaller_server(peak_gb: float, total_gb: float, size: int | None) -> None:
    """The smallest size below the current one that keeps a fifth free at the peak."""
    peaks = Peaks(int(peak_gb * GiB), int(total_gb * GiB))
    server = advise(inputs(queues=(), peaks=peaks)).smaller_server
    assert (None if server is None else server.size_gb) == size


def test_busy_process_is_not_idle() -> None:
    """A process that once used more than half its threads is not reported idle."""
    peaks = Peaks(busy_by_process={"web:2": 13, "web:1": 5})
    assert advise(inputs(peaks=peaks)).idle_processes == ()


def test_coarse_estimate_says_so() -> None:
    """Sidekiq 6 figures carry a sentence saying they are coarse."""
    coarse = dataclasses.replace(PUSH, coarse=True)
    lines = render(advise(inputs(queues=(coarse,))))
    assert any(line.startswith("Coarse estimate:") and "±50 %" in line for line in lines)
    assert not any(line.startswith("Coarse") for line in render(advise(inputs())))


# --- wording ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        pytest.param(450 * MiB, "450 MB", id="mb-tens"),
        pytest.param(454 * MiB, "450 MB", id="mb-rounded"),
        pytest.param(37 * MiB, "37 MB", id="mb-small"),
        pytest.param(2.1 * GiB, "2.1 GB", id="gb-decimal"),
        pytest.param(16 * GiB, "16 GB", id="gb-whole"),
        pytest.param(math.nan, "1 MB", id="nan"),
        pytest.param(-5, "1 MB", id="negative"),
    ],
)
def test_memory_units(amount: float, text: str) -> None:
    """Memory reads in MB below 1 GB and GB from there, sensibly rounded."""
    assert memory_text(amount) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(4200, "4,200"), (4234, "4,200"), (123_456, "120,000"), (120, "120"), (2.5, "2.5"),
     (-120, "-120"), (math.inf, "0")],
)
def test_counts(value: float, text: str) -> None:
    """Counts are grouped and rounded to two significant digits from 1,000."""
    assert count_text(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(25 * 60, "25 min"), (28 * 60, "30 min"), (7 * 60, "7 min"), (10, "1 min"),
     (3 * 3600 + 600, "3 h"), (30 * 3600, "1 d 6 h"), (math.nan, "1 min")],
)
def test_durations(seconds: float, text: str) -> None:
    """Catch-up times are rounded estimates with units."""
    assert duration_text(seconds) == text


def test_queue_names_cannot_mention_or_link() -> None:
    """A queue named like a mention, a hashtag or a link is neutralised in every line."""
    hostile = QueueWork("@someone@evil.example #tag http://x.example\x1b[31m", 5000, 10, 10, 1.0)
    advice = advise(inputs(queues=(hostile, PUSH)))
    text = "\n".join(render(advice))
    assert "@" not in text and "#" not in text and "://" not in text and "\x1b" not in text
    assert "evil.example" not in text
    assert hostile.name in [item["queue"] for item in advice.to_json()["behind"]]


def test_command_line_is_concrete() -> None:
    """The suggested command names the threads and queues in Sidekiq's syntax."""
    text = render(advise(inputs()))[0]
    assert re.search(r"`bundle exec sidekiq -c \d+ -q push( -q \w+)*`", text)
    assert re.search(r"cost about \d+ MB \(2\.1 GB available\)", text)


def test_wording_has_no_unknown_placeholders() -> None:
    """Every advice template uses only the placeholders the advisor fills in."""
    assert [p for p in DEFAULT_WORDING.problems() if "advice" in p] == []


# --- hostile, huge and random input ----------------------------------------------------------


BAD = (math.nan, math.inf, -math.inf, -1.0, 1e300, 0.0)


@pytest.mark.parametrize("bad", BAD, ids=["nan", "inf", "-inf", "negative", "huge", "zero"])
def test_non_finite_inputs_never_raise(bad: float) -> None:
    """NaN, inf and negatives in every number give an answer with finite JSON, never an error."""
    queue = QueueWork("push", bad, bad, bad, bad, bad)
    process = LiveProcess("p", bad, bad, (("push", bad),), bad)  # type: ignore[arg-type]
    data = AdviceInputs(
        queues=(queue, dataclasses.replace(PUSH, mean_job_s=bad), dataclasses.replace(
            PUSH, name="pull", done_per_min=bad)),
        processes=(process, *LAYOUT), memory_available_bytes=bad,  # type: ignore[arg-type]
        database=Database(bad, bad), peaks=Peaks(bad, bad, {"p": bad}))  # type: ignore[arg-type,dict-item]
    advice = advise(data, Policy())
    json.dumps(advice.to_json(), allow_nan=False)
    assert all(isinstance(line, str) and line for line in render(advice))


def test_ten_thousand_queues() -> None:
    """10,000 queues behind are answered with the most urgent few and a count of the rest."""
    queues = tuple(QueueWork(f"q{i}", 100 + i, 1, 10, 1.0) for i in range(10_000))
    process = proc("p", 25, tuple((q.name, 0) for q in queues), 400)
    advice = advise(AdviceInputs(queues, (process,), 8 * GiB))
    assert (len(advice.behind), advice.behind_omitted) == (10, 9990)
    assert advice.behind[0].queue == "q9999"
    assert render(advice)[10] == "9,990 more queues are behind."


def test_random_inputs_never_suggest_more_memory_than_available() -> None:
    """Across seeded random layouts no change needs more than the memory available."""
    rng = random.Random(10)
    policy = Policy()
    for _ in range(300):
        queues = tuple(QueueWork(f"q{i}", rng.choice([0, 50, 5000, 1e6, math.nan]),
                                 rng.uniform(-500, 500), rng.choice([0, 1, 100, 5000]),
                                 rng.choice([0.0, 0.05, 1.0, 30.0, math.inf]), rng.random(),
                                 rng.random() < 0.2) for i in range(rng.randint(0, 6)))
        processes = tuple(proc(f"p{j}", rng.randint(0, 50),
                               tuple((q.name, rng.choice([0, 0, 1, 3])) for q in queues
                                     if rng.random() < 0.6),
                               rng.choice([None, 150, 400, 900, -1]), rng.randint(0, 50))
                          for j in range(rng.randint(0, 4)))
        available = rng.choice([None, 0, 100 * MiB, 700 * MiB, 4 * GiB])
        database = rng.choice([None, Database(100, rng.randint(0, 120)),
                               Database(20, 5, pgbouncer=True)])
        advice = advise(AdviceInputs(queues, processes, available, database), policy)
        json.dumps(advice.to_json(), allow_nan=False)
        render(advice)
        for item in advice.behind:
            change = item.change
            if change is None:
                continue
            assert 1 <= change.threads <= policy.max_threads
            if available is not None:
                assert (change.memory_bytes + change.memory_uncertainty_bytes
                        <= available - policy.memory_reserve_bytes)
            if advice.db_free is not None:
                assert change.threads <= advice.db_free


def test_json_schema_keys() -> None:
    """The JSON document carries the documented keys, with the raw command line."""
    doc = advise(inputs(database=Database(100, 10))).to_json()
    assert set(doc) == {"schema", "behind", "behind_omitted", "idle", "memory", "database",
                        "coarse", "margin"}
    item = doc["behind"][0]
    assert item["change"]["command"] == "bundle exec sidekiq -c 9 -q push -q default"
    assert doc["database"] == {"error": None, "max_connections": 100, "reserved": 3,
                               "in_use": 10, "margin": 5, "free": 82, "pgbouncer": False,
                               "by_application": []}
    assert doc["memory"]["fit"]["kind"] == "fitted"
