"""The admin command `advise` as the running bot answers it: recent snapshots, metrics, history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.app import advice_text
from bot.collect import jobmetrics
from bot.model import PostKind, Snapshot
from tests.test_loop import START, make_bot, snapshot


class StubReader:
    """Stands in for ``JobMetricsReader``: fixed metrics, records what it was given."""

    def __init__(self, work: tuple[jobmetrics.QueueWork, ...]) -> None:
        self.work = work
        self.given: list[tuple[list[float], dict[str, str]]] = []

    def read(self, snapshots: Sequence[Snapshot],
             oldest_classes: Mapping[str, str] | None = None) -> jobmetrics.JobMetrics:
        self.given.append(([s.collected_at for s in snapshots], dict(oldest_classes or {})))
        return jobmetrics.JobMetrics("metrics", START, 15, self.work, None, (), 0, 0, ())


def test_before_any_reading_the_reply_says_so() -> None:
    """No snapshot yet: one line, no advice."""
    bot, _, _ = make_bot([])
    assert advice_text(bot, None, START) == (
        "No Sidekiq reading yet (Redis could not be read), so no advice.")


def test_recent_snapshots_are_a_minute_apart_and_bounded() -> None:
    """The loop keeps one snapshot a minute for the advice's growth, at most 17."""
    times = [START + 10 * n for n in range(200)]
    bot, _, _ = make_bot([snapshot(at, 0.0) for at in times], clock=[START])
    for _ in times:
        bot.tick()
    kept = [s.collected_at for s in bot.recent_snapshots]
    assert kept == [START + 60 * n for n in range(17, 34)]


def test_advice_from_the_running_bot() -> None:
    """The recent snapshots go to the metrics reader; a queue behind gets a command."""
    times = [START, START + 10, START + 70, START + 80]
    bot, _, _ = make_bot([snapshot(at, 400.0) for at in times], clock=[START])
    for _ in times:
        bot.tick()
    reader = StubReader((jobmetrics.QueueWork("push", 60.0, 2.0, 0.0, 120.0, 180.0, False,
                                              ("ActivityPub::DeliveryWorker",)),))
    text = advice_text(bot, reader, START + 80)  # type: ignore[arg-type]
    assert reader.given == [([START, START + 70, START + 80], {})]
    lines = text.splitlines()
    assert lines[0].startswith("push: 500 waiting, +120 a minute. It needs about 8 busy threads")
    assert "(an unknown amount available)" in lines[0]
    assert any("bundle exec sidekiq -c" in line and "-q push" in line for line in lines)
    assert lines[-1] == "No history to look at: idle threads and server size are not judged."


def test_without_metrics_the_advice_says_it_cannot_size() -> None:
    """No metrics reader (no Redis client): the queue is named, no change is guessed."""
    bot, _, _ = make_bot([snapshot(START, 400.0)])
    bot.tick()
    text = advice_text(bot, None, START)
    assert text.splitlines()[0] == ("push: 500 waiting, not changing. Its job times are not "
                                    "known yet, so I cannot size a change for it.")
    assert "Its job times are not known yet" in text and "bundle exec" not in text


def test_a_queue_incident_opens_with_what_would_help_for_admins_only() -> None:
    """The tick reads the metrics while a queue waits; the opening admin message carries advice."""
    bot, store, _ = make_bot([snapshot(START, 400.0)])
    reader = StubReader((jobmetrics.QueueWork("push", 60.0, 2.0, 0.0, 120.0, 180.0, False, ()),))
    bot.metrics_reader = reader  # type: ignore[assignment]
    bot.tick()
    assert len(reader.given) == 1
    posts = [item.post for item in store.items()]
    admin = [p.text for p in posts if p.kind is PostKind.ADMIN]
    members = [p.text for p in posts if p.kind is not PostKind.ADMIN]
    assert len(admin) == 1 and "What would help: push: 500 waiting" in admin[0]
    assert "bundle exec sidekiq" in admin[0]
    assert members and not any("would help" in t or "sidekiq" in t for t in members)


def test_no_queue_waiting_no_metrics_read() -> None:
    """With every queue empty the tick does not read the job metrics."""
    bot, _, _ = make_bot([snapshot(START, 0.0)])
    reader = StubReader(())
    bot.metrics_reader = reader  # type: ignore[assignment]
    bot.tick()
    assert reader.given == []
