"""State file and audit log after a flood of dropped mentions (issue 8: the audit is bounded).

Runs the real intake (``bot.mentions.Intake`` with the RecordingGateway over
its stream, the SQLite state on a file) the way ``app.py`` wires the drop
audit: an admin (``ops``) sends a command before every chunk of the flood and
one after it; the flood is mentions from another sender dropped unrun (stale:
older than ``MENTIONS_MAX_AGE``), delivered in chunks of 5,000 (within the
stream's queue) with one ``drain`` per chunk and an injected clock (30 s per
chunk). Two floods: all from one account, and each from its own account.

Reported: audit rows, handled-notification rows (kept 35 days for exactly-once,
not the audit's), the file's size once closed (pages in use and free), and the
time per dropped mention. The state file is on tmpfs (``/dev/shm``) so that
fsync does not dominate; the figures are sizes and counts, not speed targets.
Only APIs older than the fix are used, so the same script measures both:

    .venv/bin/python bench/audit_flood.py [--n 50000]
    PYTHONPATH=<checkout before the fix> .venv/bin/python bench/audit_flood.py
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import bot
from bot.gateway import Mention
from bot.mentions import Intake, Outcome
from bot.model import Post, PostKind
from bot.store import AuditEntry, Store
from bot.testing import RecordingGateway

T0 = 1_780_000_000.0
CHUNK = 5000


class Clock:
    """The injected clock."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        """Return the set time."""
        return self.now


def flood(path: Path, n: int, senders: int) -> dict[str, float]:
    """Run one flood into a new state file at ``path``; return what it left."""
    clock = Clock()
    gateway = RecordingGateway(clock=clock)
    store = Store(path)

    def handler(mention: Mention) -> Outcome:
        post = Post(key=f"reply:{mention.notification_id}", kind=PostKind.REPLY, text="ok",
                    visibility="direct", created_at=clock())
        return Outcome(posts=[post], audit=[AuditEntry(clock(), mention.account_id,
                                                       mention.acct, "ack", "", "ok")])

    def dropped(mention: Mention, why: str, now: float) -> list[AuditEntry]:
        return [AuditEntry(now, mention.account_id, mention.acct, "status", "",
                           f"dropped: {why}")]

    intake = Intake(store, gateway, handler, clock=clock, exempt=lambda m: m.acct == "ops",
                    audit_drop=dropped)
    intake.start(ensure_policy=False)
    intake.drain()
    spent = 0.0
    for start in range(0, n, CHUNK):
        gateway.mention("ops", "ack", account_id="1")
        for i in range(start, min(n, start + CHUNK)):
            gateway.mention(f"flood{i % senders}", "status", created_at=clock.now - 7200)
        began = time.perf_counter()
        intake.drain()
        spent += time.perf_counter() - began
        clock.now += 30
    gateway.mention("ops", "ack", account_id="1")
    intake.drain()
    entries = store.audit(10**9)
    admin = sum(1 for e in entries if e.acct == "ops")
    intake.close()
    store.close()
    db = sqlite3.connect(path)
    pages, free, size = (db.execute(f"PRAGMA {p}").fetchone()[0]
                         for p in ("page_count", "freelist_count", "page_size"))
    notifications = db.execute("SELECT count(*) FROM notifications").fetchone()[0]
    db.close()
    return {"audit rows": len(entries), "admin rows": admin, "notifications": notifications,
            "file MB": os.path.getsize(path) / 1e6, "free MB": free * size / 1e6,
            "pages": pages, "us/mention": spent / n * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="mentions per flood")
    args = parser.parse_args()
    print(f"bot from {Path(bot.__file__).parent}; {args.n} dropped mentions per flood")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        for name, senders in (("one account", 1), ("one account each", args.n)):
            figures = flood(Path(tmp) / f"{senders}.sqlite3", args.n, senders)
            print(f"{name:>17}: " + ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in figures.items()))


if __name__ == "__main__":
    main()
