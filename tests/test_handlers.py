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
from bot.mentions import (
    Handled,
    Intake,
    Limit,
    Outcome,
    ReplyLimiter,
    Result,
    format_audit,
)
from bot.model import PostKind
from bot.store import Store
from bot.testing import RecordingGateway

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



def test_advise_answers_admins_only_in_private() -> None:
    """`advise` gives an admin the advice directly; a member gets a refusal, never the advice."""
    store = Store(":memory:")
    advice = "push: 4,200 waiting, +120 a minute.\nOne more process `bundle exec sidekiq -c 8`"
    run = handler(store, advice=lambda now: advice)
    admin = run(mention("advise"))
    (answer,) = [p for p in admin.posts if p.kind is PostKind.REPLY]
    assert (answer.text, answer.visibility) == (f"@alice {advice}", "direct")
    assert [entry.command for entry in admin.audit] == ["advise"]
    member = run(mention("advise", acct="bob", account_id="20", visibility="public"))
    assert "4,200" not in reply_of(member)
    assert reply_of(member).startswith("@bob Sorry, only the admins")
    without = handler(store)(mention("advise"))
    assert reply_of(without).startswith("@alice Capacity advice is not available here")


def test_long_advice_is_a_short_private_thread() -> None:
    """Advice longer than a post comes as a thread of direct replies, none of it lost."""
    store = Store(":memory:")
    lines = [f"queue{i}: {1000 + i} waiting, +{i} a minute. One more process "
             f"`bundle exec sidekiq -c 10 -q queue{i}` would cost about 450 MB." for i in range(6)]
    run = handler(store, advice=lambda now: "\n".join(lines))
    outcome = run(mention("advise"))
    replies = [p for p in outcome.posts if p.kind is PostKind.REPLY]
    assert len(replies) > 1
    assert {p.visibility for p in replies} == {"direct"}
    assert all(p.text.startswith("@alice ") and len(p.text) <= 500 for p in replies)
    assert [p.parent_key for p in replies[1:]] == [p.key for p in replies[:-1]]
    said = "\n".join(p.text for p in replies)
    assert all(line in said for line in lines)
    apply(store, outcome)  # the outbox takes the thread as it is
    assert [item.post.key for item in store.pending()] == [p.key for p in replies]


# --- with the intake: the reply limits never stop an admin, every drop is audited ---------


class Clock:
    """A settable clock."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def wired(store: Store, gateway: RecordingGateway, clock: Clock,
          limiter: ReplyLimiter | None = None) -> Intake:
    """The intake with the commands handler, wired as ``bot.app.start_commands`` does."""
    settings = compose.Settings(instance="example.social", admin_accts=("alice",))
    run = CommandHandler(store, settings, bot_acct="statusbot", bot_account_id="bot",
                         admins=[ALICE], snapshot=lambda: None, clock=clock)
    gateway.accounts["alice"] = ("10", False)
    intake = Intake(store, gateway, run, clock=clock, stream=False, limiter=limiter,
                    backfill_every=0.0,
                    exempt=run.is_admin, audit_drop=run.dropped)
    intake.drain()  # the fresh state's first look, before any mention
    return intake


def admin_says(gateway: RecordingGateway, clock: Clock, text: str) -> Mention:
    return gateway.mention("alice", text, visibility="direct", created_at=clock())


@pytest.mark.parametrize("count", [pytest.param(6, id="6th"), pytest.param(20, id="20th")])
def test_admin_commands_within_the_window_all_run(count: int) -> None:
    """An admin's commands past the per-account limit still run; the audit says so."""
    store, clock = Store(":memory:"), Clock()
    gateway = RecordingGateway(clock=clock)
    intake = wired(store, gateway, clock)
    texts = ["incident Uploads fail", *[f"update step {i}" for i in range(count - 2)],
             "resolve Uploads work again"]
    handled: list[Handled] = []
    for text in texts:
        admin_says(gateway, clock, text)
        clock.now += 1.0  # well within the 10 minutes in which the account gets 5 replies
        handled += intake.drain(now=clock.now).handled
    assert [h.result for h in handled] == [Result.ANSWERED] * count
    state = incidents.IncidentState.from_json(store.get_state(INCIDENT_STATE) or {})
    assert state.open is None  # the last one, `resolve`, ran: the notice is unpinned
    assert any(i.post.unpin_key for i in store.items())
    audit = store.audit()
    assert [e.command for e in audit] == [t.split()[0] for t in texts]
    over = [e for e in audit if "reply over the limit: account" in e.result]
    assert len(over) == count - 5 and over[-1].command == "resolve"


def test_members_exhausting_the_global_budget_leave_the_admin_free() -> None:
    """Ten members spend the hourly budget; an admin's `incident` runs, members' are dropped."""
    store, clock = Store(":memory:"), Clock()
    gateway = RecordingGateway(clock=clock)
    intake = wired(store, gateway, clock)
    results: list[Result] = []
    for round_ in range(2):  # five each now, five each when their own buckets are full again
        clock.now += 600 * round_
        for member in range(10):
            for _ in range(5):
                gateway.mention(f"m{member}", "status", created_at=clock())
        results += [h.result for h in intake.drain(now=clock.now).handled]
    assert intake.limiter.check("a-m9", clock.now) is Limit.GLOBAL
    assert results.count(Result.RATE_LIMITED) > 0
    incident = admin_says(gateway, clock, "incident Uploads fail")
    late_member = gateway.mention("m9", "status", created_at=clock())
    [admin, limited] = intake.drain(now=clock.now).handled
    assert (admin.notification_id, admin.result) == (incident.notification_id,
                                                     Result.ANSWERED)
    assert (limited.notification_id, limited.result) == (late_member.notification_id,
                                                         Result.RATE_LIMITED)
    state = incidents.IncidentState.from_json(store.get_state(INCIDENT_STATE) or {})
    assert state.open is not None and state.open.manual
    assert any(i.post.text.startswith("Uploads fail") for i in store.items()
               if i.post.kind is PostKind.NOTICE)
    entries = {e.notification_id: e for e in store.audit(10_000)}
    assert entries[incident.notification_id].result.endswith(
        "(reply over the limit: global)") and entries[incident.notification_id].admin
    # A member's drops within the hour are one row with a count (Store._add_audit).
    [late] = [e for e in entries.values()
              if e.acct == "m9" and e.result == "dropped: rate limited: global"]
    assert (late.admin, late.last_at) == (False, clock.now) and late.count > 1


@pytest.mark.parametrize(("limiter", "sent", "reason"), [
    pytest.param(ReplyLimiter(per_account=2), 3, "dropped: rate limited: account",
                 id="account"),
    pytest.param(ReplyLimiter(per_account=5, total=2), 3, "dropped: rate limited: global",
                 id="global"),
])
def test_rate_limited_member_mention_is_audited(limiter: ReplyLimiter, sent: int,
                                                reason: str) -> None:
    """A member's mention dropped by the limits is in `statusbot audit`, with the reason."""
    store, clock = Store(":memory:"), Clock()
    gateway = RecordingGateway(clock=clock)
    intake = wired(store, gateway, clock, limiter)
    made = [gateway.mention("bob", f"status {i}", visibility="public", created_at=clock())
            for i in range(sent)]
    results = [h.result for h in intake.drain(now=clock.now).handled]
    assert results == [Result.ANSWERED] * (sent - 1) + [Result.RATE_LIMITED]
    [entry] = store.audit()  # a member's `status` that ran is no admin action
    assert (entry.notification_id, entry.acct, entry.command, entry.result) == (
        made[-1].notification_id, "bob", "status", reason)
    assert reason in format_audit([entry])


@pytest.mark.parametrize(("text", "command", "args"), [
    pytest.param("incident Uploads fail", "incident", "Uploads fail", id="command"),
    pytest.param("incident", "incident", "", id="bad-arguments"),
    pytest.param("hello there", "?", "hello there", id="chat"),
    pytest.param("", "help", "", id="empty"),
    pytest.param("st\u200batus \x1b[2J", "status", "\x1b[2J", id="hidden-and-control"),
    pytest.param("status \u2028-> forged", "status", "-> forged", id="line-separator"),
])
def test_dropped_mentions_are_described_for_the_audit(text: str, command: str,
                                                      args: str) -> None:
    """What a dropped mention asked for is named in its audit entry; never raises."""
    run = handler(Store(":memory:"))
    m = mention(text, acct="bob", account_id="20")
    [entry] = run.dropped(m, "rate limited: account", NOW)
    assert (entry.command, entry.args, entry.result, entry.notification_id) == (
        command, args, "dropped: rate limited: account", m.notification_id)
    shown = format_audit([entry])
    assert "\x1b" not in shown and "\u2028" not in shown and "\n" not in shown


@pytest.mark.parametrize(("who", "text", "audited"), [
    pytest.param(("alice", "10"), "incident", True, id="admin-bad-arguments"),
    pytest.param(("alice", "10"), "frobnicate", True, id="admin-unknown"),
    pytest.param(("bob", "20"), "incident", True, id="member-admin-command-no-text"),
    pytest.param(("bob", "20"), "hello there", False, id="member-chat"),
    pytest.param(("otherbot", "40"), "incident x", True, id="denied-bot"),
])
def test_refused_attempts_are_audited(who: tuple[str, str], text: str, audited: bool) -> None:
    """Commands the handler refuses before running them leave a trace; chatting does not."""
    m = mention(text, acct=who[0], account_id=who[1], bot=who[0] == "otherbot")
    outcome = handler(Store(":memory:"))(m)
    assert [e.result.split(":")[0] for e in outcome.audit] == (["refused"] if audited else [])


@pytest.mark.parametrize(("who", "expected"), [
    pytest.param(("alice", "10", False), True, id="admin"),
    pytest.param(("alice", "99", False), False, id="admin-acct-other-id"),
    pytest.param(("alice@evil.example", "10", False), False, id="remote-namesake"),
    pytest.param(("bob", "20", False), False, id="member"),
    pytest.param(("alice", "10", True), False, id="bot-flag"),
])
def test_only_admins_are_exempt_from_the_limits(who: tuple[str, str, bool],
                                                expected: bool) -> None:
    """The limits' exemption is the admin check itself: id and full acct, failing closed."""
    m = mention("status", acct=who[0], account_id=who[1], bot=who[2])
    assert handler(Store(":memory:")).is_admin(m) is expected
