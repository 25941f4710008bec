"""The pure parts of the Sidekiq reader: timestamps, latency and liveness."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.collect.sidekiq import (
    MAX_INFO_CHARS,
    MAX_JOB_CHARS,
    epoch_seconds,
    job_latency,
    oldest_job,
    parse_process,
    stale_limit,
)
from bot.model import Anomaly

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1_799_999_990.25, 1_799_999_990.25, id="float-seconds-sidekiq7"),
        pytest.param(1_799_999_990_250, 1_799_999_990.25, id="int-ms-sidekiq8"),
        pytest.param(1_799_999_990, 1_799_999_990.0, id="int-seconds-other-client"),
        pytest.param(1_799_999_990_250.0, 1_799_999_990.25, id="float-ms"),
        pytest.param("1799999990.5", 1_799_999_990.5, id="hash-field-string"),
        pytest.param("1799999990500", 1_799_999_990.5, id="hash-field-string-ms"),
        pytest.param("soon", None, id="not-a-number"),
        pytest.param(None, None, id="missing"),
        pytest.param(True, None, id="bool"),
        pytest.param(-5, None, id="negative"),
        pytest.param(float("nan"), None, id="nan"),
        pytest.param([1], None, id="list"),
    ],
)
def test_epoch_seconds(value: object, expected: float | None) -> None:
    """Seconds and milliseconds are told apart by magnitude; junk is None."""
    assert epoch_seconds(value) == expected


def job(**fields: Any) -> str:
    return json.dumps({"class": "X", "queue": "default", "args": [], **fields})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, (0.0, None), id="empty-queue"),
        pytest.param(job(enqueued_at=NOW - 42.5), (42.5, None), id="sidekiq6-7-float-seconds"),
        pytest.param(job(enqueued_at=int((NOW - 42.5) * 1000)), (42.5, None), id="sidekiq8-ms"),
        pytest.param(job(created_at=NOW - 7), (7.0, None), id="created-at-fallback"),
        pytest.param(job(enqueued_at=NOW - 3, created_at=NOW - 100), (3.0, None),
                     id="enqueued-wins"),
        pytest.param(job(enqueued_at=NOW + 30), (0.0, None), id="clock-skew-future"),
        pytest.param(job(), (0.0, "oldest job has neither enqueued_at nor created_at"),
                     id="no-timestamps"),
        pytest.param("{not json", (None, "oldest job is not valid JSON"), id="bad-json"),
        pytest.param("[1, 2]", (None, "oldest job is not a JSON object"), id="json-list"),
        pytest.param(job(enqueued_at="yesterday"),
                     (None, "oldest job has a malformed enqueued_at: 'yesterday'"),
                     id="bad-enqueued-at"),
    ],
)
def test_job_latency(raw: str | None, expected: tuple[float | None, str | None]) -> None:
    """Latency is the age of the oldest job, like Sidekiq's Queue#latency."""
    latency, problem = job_latency(raw, NOW)
    assert (latency if latency is None else round(latency, 3), problem) == expected


def raw_job(**fields: Any) -> str:
    return json.dumps({"queue": "default", "args": [], "enqueued_at": NOW - 1, **fields})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(raw_job(**{"class": "ActivityPub::DeliveryWorker"}),
                     "ActivityPub::DeliveryWorker", id="plain-worker"),
        pytest.param(raw_job(**{"class": "Sidekiq::ActiveJob::Wrapper",
                                "wrapped": "ActionMailer::MailDeliveryJob"}),
                     "ActionMailer::MailDeliveryJob", id="activejob-wrapped-wins"),
        pytest.param(raw_job(**{"class": "Sidekiq::ActiveJob::Wrapper", "wrapped": 7}),
                     "Sidekiq::ActiveJob::Wrapper", id="wrapped-not-text"),
        pytest.param(raw_job(**{"class": "@admin@example.com"}), None, id="mention-shaped"),
        pytest.param(raw_job(**{"class": "#Fire"}), None, id="hashtag-shaped"),
        pytest.param(raw_job(**{"class": "https://evil.example/X"}), None, id="link-shaped"),
        pytest.param(raw_job(**{"class": "Evil\x1b[2JWorker"}), None, id="control-chars"),
        pytest.param(raw_job(**{"class": "A" * 256}), "A" * 256, id="at-bound"),
        pytest.param(raw_job(**{"class": "A" * 257}), None, id="too-long"),
        pytest.param(raw_job(**{"class": ["X"]}), None, id="not-text"),
        pytest.param(raw_job(), None, id="no-class"),
        pytest.param(raw_job(**{"class": "X", "enqueued_at": "soon"}), "X",
                     id="bad-timestamp-class-kept"),
        pytest.param("{not json", None, id="bad-json"),
        pytest.param('["X"]', None, id="json-list"),
        pytest.param('{"class": "X", "args": "' + "a" * (MAX_JOB_CHARS + 1) + '"}', None,
                     id="oversized-not-parsed"),
    ],
)
def test_oldest_job_class(raw: str, expected: str | None) -> None:
    """The oldest job's class is kept only when it is a plain, bounded Ruby class name."""
    assert oldest_job(raw)[3] == expected


def info(**fields: Any) -> str:
    base: dict[str, Any] = {"hostname": "worker1", "pid": 42, "tag": "mastodon",
                            "started_at": NOW - 3600, "identity": "worker1:42:abc",
                            "queues": ["default", "push"], "labels": []}
    return json.dumps({**base, **fields})


def fields(raw_info: str | None, *, busy: str | None = "1", beat: str | None = None,
           quiet: str | None = "false", rss: str | None = "204800",
           concurrency: str | None = None) -> list[str | None]:
    return [raw_info, busy, beat if beat is not None else str(NOW - 2), quiet, rss, concurrency]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(fields(info(concurrency=5)),
                     {"alive": True, "stale_reason": None, "concurrency": 5, "busy": 1,
                      "queues": ("default", "push"), "version": None},
                     id="sidekiq6-fresh"),
        pytest.param(fields(info(concurrency=5), beat=str(NOW - 16)),
                     {"alive": False, "stale_reason": "no heartbeat for 16 s"},
                     id="sidekiq6-three-missed-beats"),
        pytest.param(fields(info(concurrency=5, version="7.3.2"), beat=str(NOW - 16)),
                     {"alive": True, "stale_reason": None, "version": "7.3.2"},
                     id="sidekiq7-beats-every-10s"),
        pytest.param(fields(info(concurrency=5, version="7.3.2"), beat=str(NOW - 31)),
                     {"alive": False, "stale_reason": "no heartbeat for 31 s"},
                     id="sidekiq7-stale"),
        pytest.param(fields(None, busy=None, beat="", quiet=None, rss=None),
                     {"alive": False, "stale_reason": "heartbeat expired", "hostname": None,
                      "busy": None, "queues": ()},
                     id="hash-expired-after-kill"),
        pytest.param(fields(info(version="8.1.6", capsules={"default": {"concurrency": 7}}),
                            concurrency="12"),
                     {"alive": True, "concurrency": 12},
                     id="sidekiq8.1.2-concurrency-hash-field"),
        pytest.param(fields(info(version="8.0.9", queues=None,
                                 capsules={"default": {"concurrency": 3,
                                                       "weights": {"default": 8, "push": 6}},
                                           "single": {"concurrency": 1,
                                                      "weights": {"scheduler": 0}}})),
                     {"concurrency": 4, "queues": ("default", "push", "scheduler")},
                     id="sidekiq8-capsules-without-queues"),
        pytest.param(fields(info(concurrency=5, queues=["default", "default", "push"])),
                     {"queues": ("default", "push")}, id="weighted-duplicates"),
        pytest.param(fields(info(concurrency=5), quiet="true"),
                     {"alive": True, "quiet": True}, id="quiet-is-still-alive"),
        pytest.param(fields(info(concurrency=5), beat=str(int((NOW - 2) * 1000))),
                     {"alive": True, "beat_age_s": pytest.approx(2.0)}, id="beat-in-ms"),
    ],
)
def test_parse_process(raw: list[str | None], expected: dict[str, Any]) -> None:
    """Liveness, concurrency and queues come out right for each Sidekiq layout."""
    process, anomalies = parse_process("worker1:42:abc", raw, NOW)
    actual = {name: getattr(process, name) for name in expected}
    assert (actual, anomalies) == (expected, [])


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param(fields("{oops"), "heartbeat info is not a JSON object", id="bad-info"),
        pytest.param(fields(info(), beat="later"), "malformed beat: 'later'", id="bad-beat"),
    ],
)
def test_parse_process_counts_malformed_data(raw: list[str | None], problem: str) -> None:
    """Malformed heartbeat data becomes an anomaly and a process that is not alive."""
    process, anomalies = parse_process("w:1:x", raw, NOW)
    assert anomalies == [Anomaly("w:1:x", problem)]
    assert process.alive is (problem == "heartbeat info is not a JSON object")


@pytest.mark.parametrize(
    ("parsed_info", "configured", "expected"),
    [
        pytest.param({}, 0.0, 15.0, id="sidekiq6"),
        pytest.param({"version": "7.0.2"}, 0.0, 30.0, id="sidekiq7"),
        pytest.param({"version": "8.1.6"}, 0.0, 30.0, id="sidekiq8"),
        pytest.param({"version": "garbage"}, 0.0, 15.0, id="unknown-version"),
        pytest.param({"version": "8.1.6"}, 90.0, 90.0, id="configured"),
    ],
)
def test_stale_limit(parsed_info: dict[str, Any], configured: float, expected: float) -> None:
    """Three beats of the process's Sidekiq version, unless configured."""
    assert stale_limit(parsed_info, configured) == expected


# --------------------------------------------------------------------------- hostile data

DEEP = "[" * 200_000 + "]" * 200_000
"""200,000 nested brackets: json.loads would raise RecursionError."""

HUGE_DIGITS = "9" * 400
"""A number with 400 digits: too big for a float, far too big for any counter."""


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("inf", id="str-inf"),
        pytest.param("-inf", id="str-minus-inf"),
        pytest.param("nan", id="str-nan"),
        pytest.param("1e400", id="str-1e400"),
        pytest.param(HUGE_DIGITS, id="str-400-digits"),
        pytest.param(int(HUGE_DIGITS), id="int-400-digits"),
        pytest.param(float("inf"), id="float-inf"),
        pytest.param(1e300, id="float-1e300"),
        pytest.param(0, id="zero"),
        pytest.param({"at": 1}, id="dict"),
    ],
)
def test_epoch_seconds_rejects_hostile_values(value: object) -> None:
    """Non-finite, out-of-range and wrongly typed timestamps are None, never an exception."""
    assert epoch_seconds(value) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param('{"enqueued_at": 1e400}',
                     (None, "oldest job has a malformed enqueued_at: inf"), id="enqueued-1e400"),
        pytest.param('{"enqueued_at": ' + HUGE_DIGITS + "}",
                     (None, "oldest job has a malformed enqueued_at: " + "9" * 40),
                     id="enqueued-400-digits"),
        pytest.param('{"enqueued_at": NaN}',
                     (None, "oldest job has a malformed enqueued_at: nan"), id="enqueued-nan"),
        pytest.param('{"enqueued_at": Infinity}',
                     (None, "oldest job has a malformed enqueued_at: inf"), id="enqueued-inf"),
        pytest.param('{"enqueued_at": "inf"}',
                     (None, "oldest job has a malformed enqueued_at: 'inf'"),
                     id="enqueued-str-inf"),
        pytest.param('{"enqueued_at": -5}',
                     (None, "oldest job has a malformed enqueued_at: -5"), id="enqueued-negative"),
        pytest.param('{"created_at": 1e400}',
                     (None, "oldest job has a malformed created_at: inf"), id="created-1e400"),
        pytest.param('{"created_at": ' + HUGE_DIGITS + "}",
                     (None, "oldest job has a malformed created_at: " + "9" * 40),
                     id="created-400-digits"),
        pytest.param('{"created_at": [1, 2]}',
                     (None, "oldest job has a malformed created_at: [1, 2]"),
                     id="created-wrong-type"),
        pytest.param(DEEP, (None, "oldest job is nested too deeply"), id="200000-brackets"),
        pytest.param('{"args": ' + DEEP + ', "enqueued_at": 1}',
                     (None, "oldest job is nested too deeply"), id="200000-brackets-in-args"),
        pytest.param('"just a string"', (None, "oldest job is not a JSON object"),
                     id="json-string"),
    ],
)
def test_job_latency_hostile(raw: str, expected: tuple[float | None, str | None]) -> None:
    """A hostile oldest job is a problem and an unknown latency, never an exception."""
    assert job_latency(raw, NOW) == expected


def big_job(size: int, **stamps: float) -> str:
    """A job JSON of exactly ``size`` characters, its timestamps at the end as Sidekiq puts them."""
    tail = "".join(f', "{name}": {value!r}' for name, value in stamps.items()) + "}"
    head = '{"class": "X", "args": ["'
    return head + "x" * (size - len(head) - len('"]') - len(tail)) + '"]' + tail


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(big_job(MAX_JOB_CHARS, enqueued_at=NOW - 30), (30.0, None),
                     id="at-the-limit-parsed"),
        pytest.param(big_job(MAX_JOB_CHARS + 1, enqueued_at=NOW - 30),
                     (30.0, f"oldest job is larger than {MAX_JOB_CHARS} characters"),
                     id="over-the-limit-latency-from-its-end"),
        pytest.param(big_job(MAX_JOB_CHARS + 1, created_at=NOW - 12),
                     (12.0, f"oldest job is larger than {MAX_JOB_CHARS} characters"),
                     id="over-the-limit-created-at"),
        pytest.param(big_job(MAX_JOB_CHARS + 1),
                     (None, f"oldest job is larger than {MAX_JOB_CHARS} characters"),
                     id="over-the-limit-no-timestamp"),
        pytest.param(big_job(MAX_JOB_CHARS + 1, enqueued_at=1e300),
                     (None, f"oldest job is larger than {MAX_JOB_CHARS} characters"),
                     id="over-the-limit-hostile-timestamp"),
    ],
)
def test_job_latency_size_guard(raw: str, expected: tuple[float | None, str | None]) -> None:
    """A job over the size limit is not parsed; its latency may still come from its ends."""
    latency, problem = job_latency(raw, NOW)
    assert (latency if latency is None else round(latency, 3), problem) == expected


@pytest.mark.parametrize(
    ("raw", "expected", "problems"),
    [
        *[pytest.param(fields(info(concurrency=5), busy=value), {"busy": None, "alive": True},
                       [f"malformed busy: {value!r:.40}"], id=f"busy-{name}")
          for name, value in (("inf", "inf"), ("nan", "nan"), ("1e400", "1e400"),
                              ("400-digits", HUGE_DIGITS), ("negative", "-3"),
                              ("word", "many"))],
        *[pytest.param(fields(info(concurrency=5), rss=value), {"rss_kb": None, "alive": True},
                       [f"malformed rss: {value!r:.40}"], id=f"rss-{name}")
          for name, value in (("inf", "inf"), ("nan", "nan"), ("1e400", "1e400"),
                              ("400-digits", HUGE_DIGITS), ("negative", "-512000"))],
        *[pytest.param(fields(info(), concurrency=value),
                       {"concurrency": None, "alive": True},
                       [f"malformed concurrency: {value!r:.40}"], id=f"concurrency-{name}")
          for name, value in (("inf", "inf"), ("nan", "nan"), ("1e400", "1e400"),
                              ("400-digits", HUGE_DIGITS), ("negative", "-1"))],
        *[pytest.param(fields(info(concurrency=5), beat=value),
                       {"alive": False, "stale_reason": "no heartbeat time", "beat_age_s": None},
                       [f"malformed beat: {value!r:.40}"], id=f"beat-{name}")
          for name, value in (("inf", "inf"), ("nan", "nan"), ("1e400", "1e400"),
                              ("400-digits", HUGE_DIGITS), ("negative", "-1"))],
        pytest.param(fields(info(concurrency=10**400)), {"concurrency": None},
                     ["malformed info.concurrency: " + "1" + "0" * 39],
                     id="info-concurrency-400-digits"),
        pytest.param(fields(info(concurrency=True)), {"concurrency": None},
                     ["malformed info.concurrency: True"], id="info-concurrency-bool"),
        pytest.param(fields(info(concurrency=-4)), {"concurrency": None},
                     ["malformed info.concurrency: -4"], id="info-concurrency-negative"),
        pytest.param(fields(info(concurrency=5, started_at=1e300)), {"started_at": None},
                     ["malformed info.started_at: 1e+300"], id="info-started-at-1e300"),
        pytest.param(fields(info(concurrency=5, pid=10**400)), {"pid": None},
                     ["malformed info.pid: " + "1" + "0" * 39], id="info-pid-400-digits"),
        pytest.param(fields(info(concurrency=5, hostname=5, tag=[], version={"x": 1},
                                 queues="default")),
                     {"hostname": None, "tag": None, "version": None, "queues": ()}, [],
                     id="info-wrong-types"),
        pytest.param(fields(info(version="8.1.6", queues=None,
                                 capsules={"default": {"concurrency": 10**400,
                                                       "weights": ["x"]}})),
                     {"concurrency": None, "queues": ()}, [], id="capsules-hostile"),
        pytest.param(fields(DEEP), {"alive": True, "hostname": None},
                     [f"heartbeat info is larger than {MAX_INFO_CHARS} characters"],
                     id="info-200000-brackets"),
        pytest.param(fields("[" * 30_000 + "]" * 30_000), {"alive": True, "hostname": None},
                     ["heartbeat info is nested too deeply"], id="info-30000-brackets"),
        pytest.param(fields("[" + "1," * 5 + "1]"), {"alive": True, "hostname": None},
                     ["heartbeat info is not a JSON object"], id="info-json-list"),
        pytest.param(fields(info(concurrency=5, padding="x" * MAX_INFO_CHARS)),
                     {"alive": True, "hostname": None},
                     [f"heartbeat info is larger than {MAX_INFO_CHARS} characters"],
                     id="info-too-large"),
    ],
)
def test_parse_process_hostile(raw: list[str | None], expected: dict[str, Any],
                               problems: list[str]) -> None:
    """Each hostile heartbeat value is an anomaly and None; the rest of the process stands."""
    process, anomalies = parse_process("w:1:x", raw, NOW)
    actual = {name: getattr(process, name) for name in expected}
    assert (actual, [a.problem for a in anomalies]) == (expected, problems)
