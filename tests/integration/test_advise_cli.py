"""`statusbot advise` against a real redis-server holding keys the test writes (Sidekiq 7)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import redis

from bot import defaults
from bot.cli import EXIT_CONFIG, EXIT_OK, EXIT_UNREACHABLE, advise_command, main
from bot.collect.jobmetrics import minute_keys
from bot.config import load_config
from bot.demo import free_port
from bot.history import History, Sample
from bot.store import Store
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration

T = 1_800_000_000.0
GB = 2**30
WORKER = "ActivityPub::DeliveryWorker"


def job(at: float, n: int) -> str:
    return json.dumps({"class": WORKER, "queue": "push", "args": [n], "jid": f"{n:024x}",
                       "enqueued_at": at, "created_at": at})


def write_sidekiq7(client: redis.Redis, now: float, backlog: int) -> None:
    """One Sidekiq 7.3 process (5 threads, all busy) on push; 150 jobs of 2 s a minute."""
    pipe = client.pipeline(transaction=False)
    pipe.sadd("queues", "push")
    for n in range(backlog):
        pipe.lpush("queue:push", job(now - 600 + n * 0.01, n))
    identity = "worker1:7:0123456789ab"
    info = {"hostname": "worker1", "pid": 7, "tag": "mastodon", "started_at": now - 3600,
            "queues": ["push"], "version": "7.3.2", "concurrency": 5,
            "weights": [{"push": 0}], "labels": [], "identity": identity}
    pipe.sadd("processes", identity)
    pipe.hset(identity, mapping={"info": json.dumps(info), "busy": 5, "beat": now - 1,
                                 "quiet": "false", "rss": 400_000})
    for minute in range(int(now // 60) - 20, int(now // 60) + 2):
        pipe.hset(minute_keys(minute)[0], mapping={f"{WORKER}|p": 150,
                                                   f"{WORKER}|ms": 150 * 2000})
    pipe.execute()


def config_file(tmp_path: Path, url: str) -> Path:
    (tmp_path / "state").mkdir(exist_ok=True)
    path = tmp_path / "statusbot.toml"
    path.write_text(f'[bot]\nstate_dir = "{tmp_path / "state"}"\n\n[redis]\nurl = "{url}"\n')
    return path


def test_two_readings_measure_growth_and_size_a_process(redis_server: RedisServer,
                                                        tmp_path: Path) -> None:
    """Growth between the readings + metrics → Little's law: 270 a minute * 2 s * 1.25."""
    client = redis_server.client()
    write_sidekiq7(client, T, 600)
    with Store(tmp_path / "state" / defaults.STATE_FILE) as store:
        History(store).record(Sample(at=T - 3600, memory_used_bytes=5 * GB,
                                     memory_total_bytes=16 * GB, busy=5))
    config = load_config(str(config_file(tmp_path, redis_server.url)), need_token=False)
    now = [T]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        for n in range(60):  # 60 more waiting after 30 s: +120 a minute
            client.lpush("queue:push", job(T + n * 0.1, 1000 + n))
        client.hset("worker1:7:0123456789ab", "beat", T + 29)
        now[0] += seconds

    out = io.StringIO()
    assert advise_command(config, as_json=True, wait=30.0, clock=lambda: now[0], sleep=sleep,
                          out=out) == EXIT_OK
    assert slept == [30.0]
    document = json.loads(out.getvalue())
    assert document["reading"] == {"snapshots": 2, "span_s": 30.0, "metrics": "metrics",
                                   "growth_measured": True, "history": True}
    [push] = document["behind"]
    assert (push["queue"], push["backlog"]) == ("push", 660)
    assert push["growth_per_min"] == pytest.approx(120.0)
    assert push["arrivals_per_min"] == pytest.approx(270.0)
    assert push["mean_job_s"] == pytest.approx(2.0)
    assert push["threads_needed"] == pytest.approx(270 / 60 * 2 * 1.25)
    assert push["threads_busy"] == pytest.approx(5.0)
    if push["change"] is not None:  # the host's free memory decides whether one fits
        assert push["change"]["command"].startswith("bundle exec sidekiq -c ")
        assert push["change"]["queues"][0] == "push" and push["change"]["threads"] <= 7
    else:
        assert push["no_change"] == "no_memory"
    assert document["idle"]["smaller_server"]["size_gb"] == 8
    assert document["database"] is None


def test_one_reading_says_growth_unknown(redis_server: RedisServer, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """--wait 0: one reading; the text says growth was not measured and no history exists."""
    write_sidekiq7(redis_server.client(), time.time(), 600)
    path = config_file(tmp_path, redis_server.url)
    assert main(["advise", "--config", str(path), "--wait", "0"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("statusbot advise, ")
    assert "push: 600 waiting, not changing." in out
    assert "Backlog growth was not measured" in out
    assert "No history to look at" in out


def test_no_backlog_says_so_in_one_line(redis_server: RedisServer, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """An instance with nothing waiting: one line, then what could not be judged."""
    write_sidekiq7(redis_server.client(), time.time(), 0)
    path = config_file(tmp_path, redis_server.url)
    assert main(["advise", "--config", str(path), "--wait", "0"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == [
        "No queue is behind.",
        "Database connections not checked: no [postgres] or DB_* in .env.production.",
        "No history to look at: idle threads and server size are not judged."]


def test_redis_down_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis unreachable: exit 1, one line naming the URL without its password."""
    path = config_file(tmp_path, "")
    path.write_text(f'[bot]\nstate_dir = "{tmp_path / "state"}"\n')
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert main(["advise", "--config", str(path), "--wait", "0"]) == EXIT_UNREACHABLE
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "cannot read Redis at redis://127.0.0.1:" in (
        captured.err)
    assert "hunter2" not in captured.out + captured.err


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config error names the key and exits 2."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[redis]\nurl = 5\n")
    assert main(["advise", "--config", str(bad)]) == EXIT_CONFIG
    assert "redis.url: must be a redis:// URL, got int 5" in capsys.readouterr().err


@pytest.mark.parametrize("wait", ["5", "-1", "nan", "601", "soon"])
def test_wait_is_bounded(wait: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--wait takes 0 or 30..600 seconds; anything else is a usage error (exit 2)."""
    with pytest.raises(SystemExit) as exited:
        main(["advise", "--wait", wait])
    assert exited.value.code == 2
    assert "--wait" in capsys.readouterr().err
