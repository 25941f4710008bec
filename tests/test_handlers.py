"""Command handlers: who may do what, the replies, the state they change, the audit."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bot import compose, incidents
from bot.commands import Admin
from bot.gateway import Mention, MentionedAccount
from bot.handlers import (
    CONFIRM_STATE,
    INCIDENT_STATE,
    MUTES_STATE,
    CommandHandler,
    post_to_json,
    runtime_mutes,
)
from bot.mentions import Outcome
from bot.model import PostKind
from bot.store import Store

NOW = 1_796_090_400.0  # 2026-12-01T02:00:00Z
BOT = MentionedAccount(id="1", acct="statusbot")
ALICE = Admin(acct="alice", account_id="10")
_ids = itertools.count(100)


def mention(text: str, *, acct: str = "alice", account_id: str = "10",
            visibility: str = "direct", bot: bool = False) -> Mention:
    n = str(next(_ids))
    html = (f'<p><span class="h-card"><a href="https://example.social/@statusbot" '
            f'class="u-url mention">@<span>statusbot</span></a></span> {text}</p>')
    return Mention(notification_id=n, status_id=f"s{n}", account_id=account_id, acct=acct,
                   bot=bot, visibility=visibility, content=html, spoiler_text="",
                   mentions=(BOT,), created_at=NOW)


def handler(store: Store, **kwargs: Any) -> CommandHandler:
    settings = compose.Settings(instance="example.social", admin_accts=("alice",))
    return CommandHandler(store, settings, bot_acct="statusbot", bot_account_id="1",
                          admins=[ALICE], snapshot=lambda: None, clock=lambda: NOW, **kwargs)


def apply(store: Store, outcome: Outcome) -> None:
    """What the intake does with an outcome: states, posts, audit, in one go."""
    for name, value in outcome.states.items():
        store.put_state(name, value)
    store.enqueue(outcome.posts)
    for entry in outcome.audit:
        store.add_audit(entry)


def reply_of(outcome: Outcome) -> str:
    (answer,) = [p for p in outcome.posts if p.kind is PostKind.REPLY]
    return answer.text


@pytest.mark.parametrize(
    ("who", "text", "visibility", "replied", "starts"),
    [
        pytest.param(("alice", "10"), "help", "direct", True, "@alice Admin commands",
                     id="admin-help"),
        pytest.param(("bob", "20"), "status", "public", True, "@bob ", id="member-status"),
        pytest.param(("bob", "20"), "queues", "direct", True,
                     "@bob Sorry, only the admins", id="member-admin-command"),
        pytest.param(("alice@evil.example", "30"), "incident fake", "direct", True,
                     "@alice@evil.example Sorry, only the admins", id="remote-namesake"),
        pytest.param(("alice", "99"), "incident fake", "direct", True,
                     "@alice Sorry, only the admins", id="same-acct-other-id"),
        pytest.param(("alice", "10"), "incident Uploads fail", "public", True,
                     "@alice Please send admin commands", id="admin-command-in-public"),
        pytest.param(("alice", "10"), "frobnicate", "direct", True, "@alice ",
                     id="unknown-command"),
    ],
)
def test_who_may_do_what(who: tuple[str, str], text: str, visibility: str, replied: bool,
                         starts: str) -> None:
    """Only the configured admin, by id and full acct, in a direct message, may act."""
    store = Store(":memory:")
    outcome = handler(store)(mention(text, acct=who[0], account_id=who[1],
                                     visibility=visibility))
    assert reply_of(outcome).startswith(starts), reply_of(outcome)
    assert INCIDENT_STATE not in outcome.states


def test_bot_accounts_get_no_answer() -> None:
    """A bot account is denied without a reply (no bot-to-bot loops)."""
    outcome = handler(Store(":memory:"))(mention("status", acct="otherbot", account_id="40",
                                                bot=True))
    assert outcome.posts == ()
    assert outcome.detail.startswith("denied")


def test_reply_visibility_follows_the_mention() -> None:
    """A direct command gets a direct reply; a public question an unlisted one."""
    store = Store(":memory:")
    direct = handler(store)(mention("status"))
    public = handler(store)(mention("status", acct="bob", account_id="20", visibility="public"))
    assert [p.visibility for p in direct.posts] == ["direct"]
    assert [p.visibility for p in public.posts] == ["unlisted"]
    assert direct.posts[0].parent_key.startswith("status:s")  # type: ignore[union-attr]


def test_incident_update_resolve_and_audit() -> None:
    """An admin declares, updates and resolves; members get the thread; all is audited."""
    store = Store(":memory:")
    run = handler(store)
    opened = run(mention("incident Media uploads fail; we are on it."))
    apply(store, opened)
    kinds = [p.kind for p in opened.posts]
    assert kinds == [PostKind.NOTICE, PostKind.ADMIN, PostKind.REPLY]
    notice = opened.posts[0]
    assert notice.text.startswith("Media uploads fail; we are on it.") and notice.pin
    updated = run(mention("update The disk is replaced."))
    apply(store, updated)
    assert updated.posts[0].parent_key == notice.key
    resolved = run(mention("resolve Uploads work again."))
    apply(store, resolved)
    assert resolved.posts[0].unpin_key == notice.key
    state = incidents.IncidentState.from_json(store.get_state(INCIDENT_STATE) or {})
    assert state.open is None
    audit = store.audit()
    assert sorted(e.command for e in audit) == ["incident", "resolve", "update"]
    assert {(e.acct, e.account_id) for e in audit} == {("alice", "10")}


def test_update_without_an_incident_is_a_user_error() -> None:
    """Updating nothing is answered plainly, and audited."""
    store = Store(":memory:")
    outcome = handler(store)(mention("update hello"))
    assert reply_of(outcome) == "@alice Nothing to update: no incident is open."
    assert [e.result for e in outcome.audit] == ["update: Nothing to update: no incident is "
                                                 "open."]


def test_refused_admin_commands_are_audited() -> None:
    """A member trying an admin command leaves a trace for the admins."""
    outcome = handler(Store(":memory:"))(mention("silence 1h", acct="bob", account_id="20"))
    assert [(e.acct, e.command, e.result.split(":")[0]) for e in outcome.audit] == [
        ("bob", "silence", "refused")]


def test_silence_and_unsilence() -> None:
    """A silence is stored as a runtime mute; unsilence lifts silences only."""
    store = Store(":memory:")
    run = handler(store)
    apply(store, run(mention("silence 2h queue:pull")))
    apply(store, run(mention("maintenance +1h 30m database upgrade")))
    (silence, window) = sorted(runtime_mutes(store), key=lambda m: m.kind, reverse=True)
    assert (silence.kind, silence.components, silence.end - silence.start) == (
        "silence", ("queue:pull",), 7200.0)
    assert silence.mute().reason == "silenced by @alice"
    outcome = run(mention("unsilence"))
    apply(store, outcome)
    assert reply_of(outcome) == "@alice Lifted 1 silence(s)."
    assert [m.kind for m in runtime_mutes(store)] == ["maintenance"]
    assert window.mute().reason == "maintenance: database upgrade"


def test_maintenance_is_announced_to_members() -> None:
    """Planning maintenance posts the announcement at once and mutes the window."""
    store = Store(":memory:")
    outcome = handler(store)(mention("maintenance 03:00 2h database upgrade"))
    announce = outcome.posts[0]
    assert (announce.kind, announce.visibility, announce.spoiler_text) == (
        PostKind.NOTICE, "public", "Planned maintenance")
    assert "database upgrade" in announce.text and "03:00" in announce.text
    assert MUTES_STATE in outcome.states


def test_confirm_and_discard() -> None:
    """`confirm` publishes the held posts; `discard` drops them; neither twice."""
    store = Store(":memory:")
    run = handler(store, confirm_enabled=True)
    held = compose.reply("k", "x", "held notice", status_id="1", visibility="public", now=NOW,
                         settings=compose.Settings())
    store.put_state(CONFIRM_STATE, {"incident": "inc-1", "deadline": NOW + 600,
                                    "posts": [post_to_json(held)], "decided": None})
    confirmed = run(mention("confirm"))
    apply(store, confirmed)
    assert confirmed.posts[0].key == "k"
    again = run(mention("discard"))
    assert reply_of(again) == "@alice No incident is waiting for confirmation."


def test_confirm_is_refused_when_not_configured() -> None:
    """Without incident_mode = "confirm", confirm is explained, not run."""
    outcome = handler(Store(":memory:"))(mention("confirm"))
    assert "only used when new incidents wait" in reply_of(outcome)


def test_replies_fit_the_instance() -> None:
    """Every reply, whatever was asked, fits max_characters."""
    store = Store(":memory:")
    settings = compose.Settings(instance="example.social", max_characters=120)
    run = CommandHandler(store, settings, bot_acct="statusbot", bot_account_id="1",
                         admins=[ALICE], snapshot=lambda: None, clock=lambda: NOW)
    for text in ("help", "status", "queues", "x" * 400, "incident " + "y" * 400):
        for post in run(mention(text)).posts:
            assert compose.mastodon_length(post.text) <= 120, (text, post.text)


def test_report_answers_with_the_latest_figures() -> None:
    """`report` gives the last seven days' figures; without history it says why."""
    store = Store(":memory:")
    with_history = handler(store, latest_report=lambda now: f"Last 7 days to {now:.0f}: fine.")
    assert reply_of(with_history(mention("report"))) == f"@alice Last 7 days to {NOW:.0f}: fine."
    without = handler(store)(mention("report"))
    assert reply_of(without).startswith("@alice No history is kept here")
