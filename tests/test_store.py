"""The SQLite state file: schema, WAL, outbox rows, named state, restarts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.model import Post, PostKind
from bot.store import SCHEMA_VERSION, ItemState, StepState, Store, StoreError

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
