"""The SQLite state file: schema, WAL, outbox rows, named state, restarts."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.model import Post, PostKind
from bot.store import (
    _MIGRATIONS,
    _SCHEMA,
    ADOPT_STATE,
    CREATED_STATE,
    SAMPLE_METRICS,
    SCHEMA_VERSION,
    AuditEntry,
    ItemState,
    StepState,
    Store,
    StoreError,
)

T0 = 1_780_000_000.0


def post(key: str, kind: PostKind = PostKind.NOTICE, *, at: float = T0,
         parent: str | None = None, pin: bool = False, unpin: str | None = None,
         text: str | None = None) -> Post:
    return Post(key=key, kind=kind, text=text or f"text of {key}", visibility="public",
                created_at=at, spoiler_text="", language="en", parent_key=parent, pin=pin,
                unpin_key=unpin)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:")
    yield s
    s.close()


def test_file_is_created_with_wal_and_schema_version(tmp_path: Path) -> None:
    """A new file gets its directories, WAL and the schema version."""
    path = tmp_path / "deep" / "dir" / "state.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer statusbot is not touched."""
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="upgrade statusbot"):
        Store(path)


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    """A corrupt file is reported as a StoreError naming the file."""
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"state\.sqlite3"):
        Store(path)


def test_reopening_keeps_the_schema(tmp_path: Path) -> None:
    """Opening an existing file twice neither fails nor adds schema rows."""
    path = tmp_path / "state.sqlite3"
    for _ in range(3):
        Store(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1


def test_state_round_trip(store: Store) -> None:
    """Named JSON state is stored, replaced and deleted."""
    assert store.get_state("incident") is None
    store.put_state("incident", {"id": "i1", "peak": 2, "components": ["queue:push"]})
    assert store.get_state("incident") == {"id": "i1", "peak": 2, "components": ["queue:push"]}
    store.put_state("incident", {"id": "i2"})
    assert store.get_state("incident") == {"id": "i2"}
    store.delete_state("incident")
    assert store.get_state("incident") is None


def test_enqueue_is_idempotent_by_key(store: Store) -> None:
    """The same key twice is one row; the first version wins."""
    assert store.enqueue([post("a"), post("b")]) == 2
    assert store.enqueue([post("a", text="changed"), post("b")]) == 0
    assert store.enqueue([post("c"), post("a")]) == 1
    item = store.get("a")
    assert item is not None and item.post.text == "text of a"
    assert [item.key for item in store.pending()] == ["a", "b", "c"]


def test_enqueue_is_one_transaction(store: Store) -> None:
    """When a batch breaks half-way nothing of it is queued."""

    def posts() -> Iterator[Post]:
        yield post("a")
        raise RuntimeError("composer broke")

    with pytest.raises(RuntimeError):
        store.enqueue(posts())
    assert store.pending() == []


def test_post_round_trips_every_field(store: Store) -> None:
    """A post comes back exactly as it was queued."""
    original = Post(key="k", kind=PostKind.UPDATE, text="Posts reach other servers late.",
                    visibility="unlisted", created_at=T0 + 0.25, spoiler_text="Server trouble",
                    language="de", parent_key="p", pin=True, unpin_key="old")
    store.enqueue([original])
    item = store.get("k")
    assert item is not None
    assert original == item.post
    assert (item.state, item.pin_state, item.unpin_state) == (
        ItemState.PENDING, StepState.PENDING, StepState.PENDING)


def test_due_in_creation_order_and_by_time(store: Store) -> None:
    """Pending items come in queue order, only when due, at most ``limit``."""
    store.enqueue([post("a", at=T0 + 5), post("b", at=T0), post("c")])
    store.mark_retry("b", "HTTP 503", T0 + 60)
    assert [i.key for i in store.due(T0, limit=10)] == ["a", "c"]
    assert [i.key for i in store.due(T0 + 60, limit=10)] == ["a", "b", "c"]
    assert [i.key for i in store.due(T0 + 60, limit=1)] == ["a"]


def test_attempt_records_first_attempt_once(store: Store) -> None:
    """first_attempt_at is the earliest attempt; attempts counts them all."""
    store.enqueue([post("a")])
    store.mark_attempt("a", T0 + 1)
    store.mark_attempt("a", T0 + 31)
    item = store.get("a")
    assert item is not None
    assert (item.attempts, item.first_attempt_at, item.last_attempt_at) == (2, T0 + 1, T0 + 31)


def test_sent_gives_the_thread_id(store: Store) -> None:
    """status_id() answers only for sent posts."""
    store.enqueue([post("a"), post("b")])
    store.mark_sent("a", "1001", T0 + 2)
    assert store.status_id("a") == "1001"
    assert store.status_id("b") is None
    assert store.status_id("nope") is None
    item = store.get("a")
    assert item is not None and (item.state, item.sent_at) == (ItemState.SENT, T0 + 2)


def test_failed_once(store: Store) -> None:
    """Only the first mark_failed counts; notices queued with it are in the same transaction."""
    store.enqueue([post("a", pin=True)])
    notice = post("fail:a", PostKind.ADMIN)
    assert store.mark_failed("a", "HTTP 422", 422, T0, [notice]) is True
    assert store.mark_failed("a", "HTTP 422", 422, T0, [post("fail:a:2", PostKind.ADMIN)]) is False
    item = store.get("a")
    assert item is not None
    assert (item.state, item.error_status, item.pin_state) == (
        ItemState.FAILED, 422, StepState.FAILED)
    assert [i.key for i in store.pending()] == ["fail:a"]


def test_fold_inserts_catchup_and_marks_items(store: Store) -> None:
    """Folding is one step: the catch-up is queued and the items point at it."""
    store.enqueue([post("a"), post("b"), post("c")])
    store.mark_sent("c", "7", T0)
    catchup = post("catchup:1", PostKind.CATCHUP, at=T0 + 4000)
    assert store.fold(["a", "b", "c"], catchup, T0 + 4000, "stale") == 2
    assert [i.key for i in store.folded_into("catchup:1")] == ["a", "b"]
    assert [i.key for i in store.pending()] == ["catchup:1"]
    assert store.counts() == {"pending": 1, "sent": 1, "failed": 0, "folded": 2}


def test_fold_without_catchup_expires(store: Store) -> None:
    """Folding into nothing expires the items."""
    store.enqueue([post("a", PostKind.ADMIN)])
    assert store.fold(["a"], None, T0, "expired") == 1
    item = store.get("a")
    assert item is not None and (item.state, item.folded_into) == (ItemState.FOLDED, None)


def test_followups_lists_sent_posts_with_pins_to_do(store: Store) -> None:
    """A sent post whose pin is not done yet is a follow-up until marked."""
    store.enqueue([post("a", pin=True), post("b", unpin="a"), post("c")])
    for key, status in (("a", "1"), ("b", "2"), ("c", "3")):
        store.mark_sent(key, status, T0)
    assert [i.key for i in store.followups()] == ["a", "b"]
    store.mark_pin("a", StepState.DONE)
    store.mark_unpin("b", StepState.FAILED, "HTTP 500")
    assert store.followups() == []


def test_restart_keeps_pending_posts(tmp_path: Path) -> None:
    """A new Store on the same file sees every row as it was committed."""
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    first.enqueue([post("a"), post("b", parent="a")])
    first.mark_attempt("a", T0 + 1)
    first.put_state("cursor", {"min_id": "20"})
    # No close(): the process dies here.
    second = Store(path)
    assert [i.key for i in second.pending()] == ["a", "b"]
    item = second.get("a")
    assert item is not None and item.first_attempt_at == T0 + 1
    assert second.get_state("cursor") == {"min_id": "20"}
    second.close()
    first.close()


def test_prune_keeps_what_is_still_referenced(store: Store) -> None:
    """Old finished rows go, unless a kept row still needs their status id."""
    store.enqueue([post("old", at=T0), post("opening", at=T0, pin=True),
                   post("reply", at=T0 + 10, parent="opening")])
    store.mark_sent("old", "1", T0)
    store.mark_sent("opening", "2", T0)
    store.mark_pin("opening", StepState.DONE)
    assert store.prune(T0 + 100) == 1
    assert store.get("old") is None
    assert store.status_id("opening") == "2"


def test_commit_tick_is_one_transaction(store: Store) -> None:
    """Posts and the state that caused them are committed together, or not at all."""
    assert store.commit_tick([post("a"), post("b")], {"incident": {"id": "i1"}}) == 2
    assert store.get_state("incident") == {"id": "i1"}

    def posts() -> Iterator[Post]:
        yield post("c")
        raise RuntimeError("composer broke")

    with pytest.raises(RuntimeError):
        store.commit_tick(posts(), {"incident": {"id": "i2"}})
    assert store.get_state("incident") == {"id": "i1"}
    assert [i.key for i in store.pending()] == ["a", "b"]


def test_last_created_by_kind(store: Store) -> None:
    """The newest post of a kind, whatever became of it."""
    assert store.last_created(PostKind.STATUS) is None
    store.enqueue([post("s1", PostKind.STATUS, at=T0), post("s2", PostKind.STATUS, at=T0 + 86400),
                   post("n", at=T0 + 90000)])
    store.fold(["s2"], None, T0 + 99999, "expired")
    assert store.last_created(PostKind.STATUS) == T0 + 86400


# --- damaged, lost and replaced state files ---------------------------------------------


def _filled(path: Path) -> None:
    """Write a real state file of many pages (outbox rows and samples)."""
    with Store(path) as s:
        s.enqueue([post(f"k{i}", text="x" * 500) for i in range(200)])
        s.add_samples([(T0 + i, *([1.0] * 14)) for i in range(500)])
    assert path.stat().st_size > 40 * 4096


def _garbage_pages(path: Path) -> None:
    _filled(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle:middle + 8 * 4096] = b"\xde\xad\xbe\xef" * (2 * 4096)
    path.write_bytes(bytes(data))


def _truncated(path: Path) -> None:
    _filled(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2 + 100])


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"this is not sqlite" * 100)


def _directory(path: Path) -> None:
    path.mkdir()


def _parent_is_a_file(path: Path) -> None:
    path.parent.rmdir()
    path.parent.write_text("a file where the state directory should be")


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        pytest.param(_garbage_pages, "damaged", id="garbage-pages"),
        pytest.param(_truncated, "damaged", id="truncated"),
        pytest.param(_not_sqlite, "damaged.*not a database", id="not-sqlite"),
        pytest.param(_directory, "cannot open", id="directory"),
        pytest.param(_parent_is_a_file, "cannot open", id="parent-is-a-file"),
    ],
)
def test_unusable_file_is_one_store_error(tmp_path: Path, damage: Any, says: str) -> None:
    """A damaged or impossible state file is refused at opening with one clear StoreError."""
    path = tmp_path / "state" / "state.sqlite3"
    path.parent.mkdir()
    damage(path)
    with pytest.raises(StoreError, match=says) as caught:
        Store(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_read_only_file_is_a_store_error(tmp_path: Path) -> None:
    """A state file the bot may not write is refused at opening, not on the first tick."""
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    path.chmod(0o444)
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None
    if immutable:  # root ignores permissions; an immutable file it cannot write either
        subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        if os.access(path, os.W_OK) and not immutable:
            pytest.skip("running as root without chattr: permissions do not stop writes")
        with pytest.raises(StoreError, match=r"readonly|read-only|cannot") as caught:
            Store(path)
        assert str(path) in str(caught.value)
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)


def _adopted(path: Path) -> None:
    with Store(path) as s:
        s.delete_state(ADOPT_STATE)


@pytest.mark.parametrize(
    ("prepare", "fresh"),
    [
        pytest.param(lambda p: None, True, id="no-file"),
        pytest.param(lambda p: p.write_bytes(b""), True, id="zero-length"),
        pytest.param(_adopted, False, id="existing"),
    ],
)
def test_a_new_file_is_marked_fresh(tmp_path: Path, prepare: Any, fresh: bool) -> None:
    """A file without the schema is new: it records when, and that pinned notices are to check."""
    path = tmp_path / "state.sqlite3"
    prepare(path)
    with Store(path) as s:
        assert (s.get_state(CREATED_STATE) is not None) is True
        assert (s.get_state(ADOPT_STATE) is not None) is fresh


def _delete(path: Path) -> None:
    path.unlink()


def _delete_dir(path: Path) -> None:
    shutil.rmtree(path.parent)


def _replace(path: Path) -> None:
    Store(path.with_name("other.sqlite3")).close()
    os.replace(path.with_name("other.sqlite3"), path)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        pytest.param(lambda p: None, None, id="untouched"),
        pytest.param(lambda p: p.touch(), None, id="touched"),
        pytest.param(_delete, "was deleted", id="deleted"),
        pytest.param(_delete_dir, "was deleted", id="directory-deleted"),
        pytest.param(_replace, "was replaced", id="replaced"),
    ],
)
def test_file_problem_notices_a_lost_file(tmp_path: Path, change: Any, says: str | None) -> None:
    """The open file is compared with what the path holds now (device and inode)."""
    path = tmp_path / "state" / "state.sqlite3"
    with Store(path) as s:
        change(path)
        problem = s.file_problem()
        assert problem is None if says is None else says in (problem or "")
        s.enqueue([post("still-works")])  # the open copy keeps working
        assert s.get("still-works") is not None


def test_memory_store_has_no_file_problem(store: Store) -> None:
    """An in-memory store has no file to lose."""
    assert store.file_problem() is None


@pytest.mark.parametrize(
    ("before", "adopted"),
    [
        pytest.param(None, True, id="no-row"),
        pytest.param("pending", True, id="pending-never-tried"),
        pytest.param("attempted", False, id="attempted"),
        pytest.param("sent", False, id="sent-elsewhere"),
    ],
)
def test_record_published_adopts_a_status(store: Store, before: str | None,
                                          adopted: bool) -> None:
    """A status published before the state was lost becomes a sent row, once."""
    notice = post("inc-1:0", pin=True)
    if before is not None:
        store.enqueue([notice])
    if before == "attempted":
        store.mark_attempt(notice.key, T0)
    if before == "sent":
        store.mark_sent(notice.key, "77", T0)
    reply = post("adopt:55:resolved", PostKind.RESOLUTION, parent="inc-1:0", unpin="inc-1:0")
    done = store.record_published([(notice, "55")], [reply], T0, {ADOPT_STATE: None})
    assert done == ([notice.key] if adopted else [])
    item = store.get(notice.key)
    assert item is not None
    if adopted:
        assert (item.state, item.status_id, item.pin_state) == (ItemState.SENT, "55",
                                                                StepState.DONE)
        assert store.known_status_ids(["55", "56"]) == {"55"}
    assert store.get(reply.key) is not None
    assert store.get_state(ADOPT_STATE) is None


def failed(store: Store, *keys: str, at: float = T0) -> None:
    """Queue ``keys`` (the first pinned, each unpinning the one before) and fail them."""
    store.enqueue([post(key, pin=i == 0, unpin=keys[i - 1] if i else None)
                   for i, key in enumerate(keys)])
    for key in keys:
        store.mark_attempt(key, at)
        assert store.mark_failed(key, "HTTP 404", 404, at)


@pytest.mark.parametrize(("keys", "since", "requeued"), [
    pytest.param(None, None, ["a", "b", "c"], id="all"),
    pytest.param(["b", "zzz"], None, ["b"], id="named-only"),
    pytest.param([], None, [], id="none-named"),
    pytest.param(None, T0 + 1, ["c"], id="failed-since"),
    pytest.param(["a'; DROP TABLE outbox; --"], None, [], id="injected-key"),
])
def test_requeue_failed(store: Store, keys: list[str] | None, since: float | None,
                        requeued: list[str]) -> None:
    """Failed rows become pending again: due now, first attempt forgotten, pins due again."""
    failed(store, "a", "b")
    failed(store, "c", at=T0 + 5)
    store.enqueue([post("sent")])
    store.mark_sent("sent", "1", T0)
    assert store.requeue_failed(keys, failed_since=since) == requeued
    for key in requeued:
        item = store.get(key)
        assert item is not None and item.state is ItemState.PENDING
        assert (item.first_attempt_at, item.finished_at, item.next_attempt_at) == (None, None, 0)
    assert [i.key for i in store.due(T0, 10)] == requeued
    a = store.get("a")
    b = store.get("b")
    assert a is not None and b is not None
    if "a" in requeued:
        assert a.pin_state is StepState.PENDING and a.unpin_state is None
    if "b" in requeued:
        assert b.unpin_state is StepState.PENDING and b.pin_state is None
    assert store.counts()["sent"] == 1


@pytest.mark.parametrize(("prepare", "superseded"), [
    pytest.param(lambda s: None, ["u1"], id="pending-never-attempted"),
    pytest.param(lambda s: s.mark_attempt("u1", T0), [], id="attempted-kept"),
    pytest.param(lambda s: s.mark_sent("u1", "9", T0), [], id="sent-kept"),
])
def test_supersede_only_unattempted_pending(store: Store, prepare: Any,
                                            superseded: list[str]) -> None:
    """Superseding drops only what cannot be on the server, and says by what."""
    store.enqueue([post("n"), post("u1", PostKind.UPDATE, parent="n"),
                   post("u2", PostKind.UPDATE, parent="n")])
    prepare(store)
    assert store.supersede([("u1", "u2")], T0 + 1) == superseded
    item = store.get("u1")
    assert item is not None
    if superseded:
        assert (item.state, item.folded_into, item.last_error) == (
            ItemState.FOLDED, "u2", "superseded by u2")
    else:
        assert item.state is not ItemState.FOLDED


def test_forget_attempt_and_make_due(store: Store) -> None:
    """A refused first attempt is forgotten; a lifted pause makes every pending row due."""
    store.enqueue([post("a"), post("b")])
    store.mark_attempt("a", T0)
    store.mark_retry("a", "HTTP 404", T0 + 900, 404)
    store.mark_retry("b", "paused", T0 + 900)
    store.forget_attempt("a")
    item = store.get("a")
    assert item is not None and item.first_attempt_at is None and item.attempts == 1
    assert store.due(T0, 10) == []
    assert store.make_due() == 2
    assert [i.key for i in store.due(T0, 10)] == ["a", "b"]


def test_last_sent_in_thread(store: Store) -> None:
    """The thread's newest sent reply, whatever is queued or failed after it."""
    store.enqueue([post("n"), post("u1", parent="n"), post("u2", parent="n"),
                   post("u3", parent="n"), post("x", parent="other")])
    for key, status in (("n", "1"), ("u1", "2"), ("u2", "3"), ("x", "4")):
        store.mark_sent(key, status, T0)
    store.mark_failed("u3", "HTTP 422", 422, T0)
    item = store.last_sent_in_thread("n")
    assert item is not None and item.key == "u2"
    assert store.last_sent_in_thread("nobody") is None


@pytest.mark.parametrize("name", ["state.sqlite3", "sub/dir/other.db"], ids=["default", "nested"])
def test_page_cache_is_bounded(tmp_path: Path, name: str) -> None:
    """A state file's page cache is capped below SQLite's 2 MB default, so RSS stays flat."""
    from bot import defaults

    s = Store(tmp_path / name)
    try:
        size = s._db.execute("PRAGMA cache_size").fetchone()[0]
    finally:
        s.close()
    assert size == -defaults.STATE_CACHE_KIB
    assert 0 < defaults.STATE_CACHE_KIB <= 512


# --- audit: caps, migration, cheap pruning ------------------------------------------------


def fill_audit(store: Store, groups: list[tuple[bool, int]]) -> list[tuple[int, bool]]:
    """Add ``n`` admin rows or other senders' rows (one account each) per group, in order."""
    made: list[tuple[int, bool]] = []
    for admin, n in groups:
        for i in range(n):
            seq = store.add_audit(AuditEntry(T0 + len(made), "1" if admin else f"x{len(made)}",
                                             "ops" if admin else f"spam{i}", "status", "",
                                             "ok" if admin else "dropped: bot account",
                                             admin=admin))
            made.append((seq, admin))
    return made


@pytest.mark.parametrize(("groups", "max_rows", "max_others", "kept"), [
    pytest.param([(True, 8), (False, 50_000)], 10_000, 2_000, (8, 2_000), id="flood-after-admins"),
    pytest.param([(False, 50_000), (True, 8)], 10_000, 2_000, (8, 2_000), id="flood-before-admins"),
    pytest.param([(True, 5), (False, 100), (True, 5)], 20, 10, (10, 10), id="admins-around-flood"),
    pytest.param([(True, 30), (False, 5)], 20, 10, (15, 5), id="admins-beyond-the-cap"),
    pytest.param([(True, 3), (False, 3)], 20, 10, (3, 3), id="within-the-caps"),
    pytest.param([], 20, 10, (0, 0), id="empty"),
])
def test_prune_audit_keeps_the_newest_of_each_within_the_caps(
        store: Store, groups: list[tuple[bool, int]], max_rows: int, max_others: int,
        kept: tuple[int, int]) -> None:
    """Other senders' rows are capped first; the newest admin rows are never pushed out."""
    made = fill_audit(store, groups)
    gone = store.prune_audit(0.0, max_rows, max_others)
    assert store.audit_rows() == kept and gone == len(made) - sum(kept)
    left = [e.seq for e in store.audit(10**9)]
    newest = [[seq for seq, admin in made if admin is a][-n:] if n else []
              for a, n in zip((True, False), kept, strict=True)]
    assert left == sorted(newest[0] + newest[1])


def test_audit_survives_the_upgrade_from_version_4(tmp_path: Path) -> None:
    """A version 4 file keeps its audit rows; its drops count as other senders' rows."""
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:  # exactly what version 4 wrote
        db.executescript(_SCHEMA + ";".join(_MIGRATIONS[v] for v in (2, 3, 4)))
        db.execute("INSERT INTO schema_version (version) VALUES (4)")
        db.executemany("INSERT INTO audit (at, account_id, acct, command, args, result, "
                       "notification_id) VALUES (?, ?, ?, ?, ?, ?, ?)", [
                           (T0, "1", "ops", "silence", "2h", "silenced", "10"),
                           (T0 + 1, "7", "spam", "status", "", "dropped: bot account", "11")])
    db.close()
    with Store(path) as store:
        assert [(e.seq, e.acct, e.args, e.notification_id, e.admin, e.count, e.last_at)
                for e in store.audit()] == [(1, "ops", "2h", "10", True, 1, None),
                                            (2, "spam", "", "11", False, 1, None)]
        assert store.add_audit(AuditEntry(T0 + 2, "1", "ops", "ack", "", "ok")) == 3
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        names = {row[1] for row in db.execute("PRAGMA index_list(audit)")}
    assert {"audit_at", "audit_admin", "audit_account"} <= names


@pytest.mark.parametrize("call", [
    pytest.param(lambda s: s.prune_audit(T0 + 100.0, 300, 100), id="prune"),
    pytest.param(lambda s: s.add_audit(AuditEntry(T0 + 999, "x5", "spam", "status", "",
                                                  "dropped: bot account", admin=False)),
                 id="collapse"),
])
def test_audit_upkeep_walks_indexes_only(store: Store, call: Any) -> None:
    """Pruning and collapsing search indexes; a walk is only a cap's OFFSET (cheap per drain).

    The prune here takes every step: retention, the others' cap, the total cap.
    """
    fill_audit(store, [(True, 500), (False, 500)])
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    call(store)
    store._db.set_trace_callback(None)
    plans = {sql: [str(row[3]) for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}")]
             for sql in statements if " audit " in sql}
    assert plans and not {sql: plan for sql, plan in plans.items() if "OFFSET" not in sql
                          and any(p.startswith("SCAN") or "TEMP B-TREE" in p for p in plan)}


# --- destinations (schema 6) ------------------------------------------------------------


def test_every_row_survives_the_upgrade_from_version_5(tmp_path: Path) -> None:
    """A version 5 file keeps every row of every table; its outbox rows go to the instance."""
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:  # exactly what version 5 wrote
        db.executescript(_SCHEMA + ";".join(_MIGRATIONS[v] for v in (2, 3, 4, 5)))
        db.execute("INSERT INTO schema_version (version) VALUES (5)")
        db.executemany(
            "INSERT INTO outbox (key, kind, text, visibility, created_at, state, status_id, "
            "parent_key, pin, pin_state, media) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                ("inc:1:notice", "notice", "down", "public", T0, "sent", "41", None, 1, "done",
                 "[]"),
                ("inc:1:update", "update", "worse", "public", T0 + 60, "pending", None,
                 "inc:1:notice", 0, None, '[["/tmp/a.png", "a chart"]]'),
                ("inc:1:admin", "admin", "@ops x", "direct", T0, "failed", None, None, 0, None,
                 "[]")])
        db.execute("INSERT INTO state (name, value, updated_at) VALUES ('incidents', "
                   "'{\"open\": null}', 1)")
        db.execute("INSERT INTO notifications (id, handled_at, result) VALUES ('77', ?, 'ok')",
                   (T0,))
        db.execute("INSERT INTO audit (at, account_id, acct, command, result, admin, count) "
                   "VALUES (?, '1', 'ops', 'ack', 'ok', 1, 1)", (T0,))
        db.execute("INSERT INTO samples_raw (at, cpu_percent) VALUES (?, 12.5)", (T0,))
        db.execute("INSERT INTO incidents_closed (id, opened_at, resolved_at, components, peak) "
                   "VALUES ('inc:0', ?, ?, '[\"web\"]', 'critical')", (T0 - 600, T0 - 60))
        before = {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608
                  for table in ("outbox", "state", "notifications", "audit", "samples_raw",
                                "incidents_closed")}
    db.close()
    with Store(path) as store:
        assert [(i.key, i.state, i.post.destination) for i in store.items()] == [
            ("inc:1:notice", ItemState.SENT, ""), ("inc:1:update", ItemState.PENDING, ""),
            ("inc:1:admin", ItemState.FAILED, "")]
        assert store.get("inc:1:update").post.media == (("/tmp/a.png", "a chart"),)  # type: ignore[union-attr]
        assert [i.key for i in store.pending()] == ["inc:1:update"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        for table, rows in before.items():
            after = db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608
            width = len(rows[0]) if rows else 0
            # the old columns hold what they held; outbox rows have one more (destination '');
            # state gains the file's creation record
            kept = [row[:width] for row in after]
            assert (set(rows) <= set(kept) if table == "state" else kept == rows), table
            if table == "outbox":
                assert {row[-1] for row in after} == {""}
        assert "outbox_destination" in {row[1] for row in db.execute("PRAGMA index_list(outbox)")}
    db.close()


def test_each_destination_reads_only_its_own_rows(store: Store) -> None:
    """due, pending, followups, counts and make_due see one destination; items sees all."""
    from dataclasses import replace

    store.enqueue([post("a"), replace(post("fb:a"), destination="fallback:b.example"),
                   post("b", pin=True)])
    store.mark_sent("b", "9", T0)
    store.mark_retry("a", "503", T0 + 60)
    store.mark_retry("fb:a", "503", T0 + 60)
    assert [i.key for i in store.due(T0 + 61, 10)] == ["a"]
    assert [i.key for i in store.due(T0 + 61, 10, destination="fallback:b.example")] == ["fb:a"]
    assert [i.key for i in store.pending("fallback:b.example")] == ["fb:a"]
    assert [i.key for i in store.followups()] == ["b"]
    assert store.followups("fallback:b.example") == []
    assert store.counts("fallback:b.example")["pending"] == 1
    assert store.counts()["pending"] == 2
    assert store.make_due("fallback:b.example") == 1
    assert [i.key for i in store.due(T0, 10, destination="fallback:b.example")] == ["fb:a"]
    assert store.due(T0, 10) == []
    assert {i.post.destination for i in store.items()} == {"", "fallback:b.example"}


def test_destination_survives_a_restart(tmp_path: Path) -> None:
    """A row's destination is stored with it."""
    from dataclasses import replace

    path = tmp_path / "state.sqlite3"
    with Store(path) as store:
        store.enqueue([replace(post("fb:n"), destination="fallback:b.example")])
    with Store(path) as store:
        item = store.get("fb:n")
        assert item is not None and item.post.destination == "fallback:b.example"
        assert store.pending() == []


# --- each host's memory (schema 7) ------------------------------------------------------


def version_6_file(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Write exactly what version 6 wrote, with a row in every table; return the rows."""
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA + ";".join(_MIGRATIONS[v] for v in (2, 3, 4, 5, 6)))
        db.execute("INSERT INTO schema_version (version) VALUES (6)")
        db.execute("INSERT INTO outbox (key, kind, text, visibility, created_at, destination) "
                   "VALUES ('inc:1:notice', 'notice', 'down', 'public', ?, 'fallback:x')", (T0,))
        db.execute("INSERT INTO state (name, value, updated_at) VALUES ('incidents', "
                   "'{\"open\": null}', 1)")
        db.execute("INSERT INTO notifications (id, handled_at, result) VALUES ('77', ?, 'ok')",
                   (T0,))
        db.execute("INSERT INTO audit (at, account_id, acct, command, result, admin, count) "
                   "VALUES (?, '1', 'ops', 'ack', 'ok', 1, 1)", (T0,))
        db.execute("INSERT INTO samples_raw (at, memory_used_bytes, memory_total_bytes) "
                   "VALUES (?, 3e9, 8e9)", (T0,))
        counts = {f"{m}_n": 0 for m in SAMPLE_METRICS} | {"memory_used_bytes_n": 10}
        bucket = {"at": int(T0) - 300, "samples": 10, "memory_used_bytes_min": 1e9,
                  "memory_used_bytes_mean": 2e9, "memory_used_bytes_max": 3e9, **counts}
        db.execute(f"INSERT INTO samples_5m ({', '.join(bucket)}) "  # noqa: S608
                   f"VALUES ({', '.join('?' for _ in bucket)})", tuple(bucket.values()))
        db.execute("INSERT INTO incidents_closed (id, opened_at, resolved_at, components, peak) "
                   "VALUES ('inc:0', ?, ?, '[\"web\"]', 'critical')", (T0 - 600, T0 - 60))
        rows = {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608
                for table in ("outbox", "state", "notifications", "audit", "samples_raw",
                              "samples_5m", "incidents_closed")}
    db.close()
    return rows


def test_every_row_survives_the_upgrade_from_version_6(tmp_path: Path) -> None:
    """A version 6 file keeps every row and gains empty per-host tables that work."""
    path = tmp_path / "state.sqlite3"
    before = version_6_file(path)
    with Store(path) as store:
        assert store.host_sample_counts() == {"raw": 0, "1h": 0, "1d": 0, "names": 0}
        assert store.add_host_samples(T0, [("db-1", 2e9, 8e9)], names_max=4) == 1
        assert store.host_sample_rows("raw", T0, T0 + 1) == [
            ("db-1", T0, 2e9, 2e9, 2e9, 8e9, 1)]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(7,)]
        for table, rows in before.items():
            after = db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608
            assert (set(rows) <= set(after) if table == "state" else after == rows), table
    db.close()


def test_a_version_7_file_is_refused_by_a_bot_that_knows_6(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older bot (schema 6) still says clearly that the file is newer than it."""
    import bot.store

    path = tmp_path / "state.sqlite3"
    Store(path).close()
    monkeypatch.setattr(bot.store, "SCHEMA_VERSION", 6)
    with pytest.raises(StoreError, match="schema version 7; this statusbot understands up "
                                         r"to 6 \(upgrade statusbot\)"):
        Store(path)


def test_host_names_are_capped(store: Store) -> None:
    """Past ``names_max`` names, a new host's samples are left out; known hosts go on."""
    assert store.add_host_samples(T0, [("a", 1.0, 2.0), ("b", 1.0, 2.0), ("c", 1.0, 2.0)],
                                  names_max=2) == 2
    assert store.add_host_samples(T0 + 30, [("c", 1.0, 2.0), ("a", 3.0, 4.0)],
                                  names_max=2) == 1
    assert store.host_sample_counts() == {"raw": 3, "1h": 0, "1d": 0, "names": 2}
    assert [(r[0], r[1]) for r in store.host_sample_rows("raw", T0, T0 + 60)] == [
        ("a", T0), ("a", T0 + 30), ("b", T0)]
