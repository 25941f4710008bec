"""Answer commands: turn one mention into a reply, state changes and audit entries.

``CommandHandler`` is the ``mentions.Intake`` handler. It reads the command
(``bot.commands``), decides who sent it (fails closed), and runs it against the
bot's state: the open incident (declare, update, resolve, acknowledge), the
runtime silences and maintenance windows, and incidents waiting for
confirmation. Everything it changes goes back in an ``Outcome``, which the
intake commits in one transaction with the claim of the mention: a crash can
neither lose a command's effect nor apply it twice.

User errors (``CommandError``) become the reply; anything else propagates to
the intake, which logs it and answers generically. Every admin action and every
refused attempt (a member's admin command, a denied sender, bad arguments) is
audited; ``is_admin`` and ``dropped`` serve the intake, which never rate-limits
an admin's command away and audits the mentions it drops unrun.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot import commands, compose, incidents
from bot.commands import Admin, Command, CommandError, Role
from bot.gateway import Mention
from bot.health import Mute
from bot.history import History
from bot.mentions import Outcome, reply_key, reply_visibility
from bot.model import Event, EventKind, Post, PostKind, Snapshot
from bot.store import AuditEntry, Store

log = logging.getLogger(__name__)

INCIDENT_STATE = "incidents"
MUTES_STATE = "mutes.runtime"
CONFIRM_STATE = "confirm"


@dataclass(frozen=True, slots=True)
class RuntimeMute:
    """A silence or maintenance window set by an admin command (kept in the store)."""

    id: str
    kind: str  # "silence" or "maintenance"
    start: float
    end: float
    components: tuple[str, ...]
    text: str
    by: str

    def mute(self) -> Mute:
        """Return the health rule mute it stands for."""
        reason = (f"maintenance: {self.text}" if self.kind == "maintenance"
                  else f"silenced by {self.by}")
        return Mute(self.start, self.end, self.components, reason)

    def to_json(self) -> dict[str, Any]:
        """Return it as JSON-ready data."""
        return dataclasses.asdict(self) | {"components": list(self.components)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuntimeMute:
        """Read what ``to_json`` wrote."""
        return cls(str(data["id"]), str(data["kind"]), float(data["start"]),
                   float(data["end"]), tuple(str(c) for c in data["components"]),
                   str(data["text"]), str(data["by"]))


def runtime_mutes(store: Store) -> list[RuntimeMute]:
    """Return the silences and maintenance windows admins set (unreadable ones are skipped)."""
    found: list[RuntimeMute] = []
    for item in (store.get_state(MUTES_STATE) or {}).get("mutes", []):
        try:
            found.append(RuntimeMute.from_json(item))
        except (KeyError, TypeError, ValueError) as exc:
            log.error("a stored silence is unreadable and ignored: %s", exc)
    return found


def mutes_state(mutes: Sequence[RuntimeMute]) -> dict[str, Any]:
    """Return the store state holding ``mutes``."""
    return {"mutes": [m.to_json() for m in mutes]}


def post_to_json(post: Post) -> dict[str, Any]:
    """Return a post as JSON-ready data (to hold it while an incident awaits confirmation)."""
    return dataclasses.asdict(post) | {"kind": post.kind.value}


def post_from_json(data: Mapping[str, Any]) -> Post:
    """Read what ``post_to_json`` wrote."""
    return Post(**{**data, "kind": PostKind(data["kind"])})


class CommandHandler:
    """Run commands from mentions against the bot's state.

    ``snapshot`` returns the latest reading (None before the first tick);
    ``admins`` are resolved at start-up (account id and full acct).
    """

    def __init__(self, store: Store, settings: compose.Settings, *, bot_acct: str,
                 bot_account_id: str | None, admins: Sequence[Admin],
                 snapshot: Callable[[], Snapshot | None],
                 public_commands: Sequence[str] = tuple(sorted(commands.PUBLIC_COMMANDS)),
                 admin_visibilities: Sequence[str] = ("direct",),
                 confirm_enabled: bool = False, local_domain: str | None = None,
                 latest_report: Callable[[float], str] | None = None,
                 advice: Callable[[float], str] | None = None,
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.settings = settings
        self.bot_acct = bot_acct
        self.bot_account_id = bot_account_id
        self.admins = tuple(admins)
        self.snapshot = snapshot
        self.public_commands = tuple(public_commands)
        self.admin_visibilities = tuple(admin_visibilities)
        self.confirm_enabled = confirm_enabled
        self.local_domain = local_domain
        self.latest_report = latest_report
        self.advice = advice
        self.clock = clock

    def __call__(self, mention: Mention) -> Outcome:
        """Handle one mention: always a reply to a person, except to denied senders."""
        now = self.clock()
        role, why = self._role(mention)
        if role is Role.DENIED:
            log.info("mention %s from %s ignored: %s", mention.notification_id, mention.acct, why)
            outcome = Outcome(detail=f"denied: {why}")
            return self._audited(outcome, mention, self._described(mention),
                                 f"refused: {why}", now, True)
        acting = commands.effective_role(role, mention.visibility,
                                         admin_visibilities=self.admin_visibilities)
        text = self._text(mention)
        try:
            command = commands.parse(text)
        except CommandError as exc:
            outcome = self._answer(mention, f"{exc} {self._help(acting)}", now,
                                   "unknown command")
            # A chat with the bot is no attempt; a known command with bad arguments is.
            attempt = role is Role.ADMIN or not isinstance(exc, commands.UnknownCommand)
            return self._audited(outcome, mention, self._described(mention),
                                 f"refused: {exc}", now, attempt)
        allowed, reason = commands.authorize(
            command, role, mention.visibility, public_commands=self.public_commands,
            admin_visibilities=self.admin_visibilities, confirm_enabled=self.confirm_enabled)
        audit = command.name not in commands.PUBLIC_COMMANDS or role is Role.ADMIN
        if not allowed:
            outcome = self._answer(mention, reason, now, f"refused: {command.name}")
            return self._audited(outcome, mention, command, f"refused: {reason}", now, audit)
        try:
            outcome = self._run(command, acting, mention, now)
        except CommandError as exc:
            outcome = self._answer(mention, str(exc), now, f"{command.name}: {exc}")
        return self._audited(outcome, mention, command, outcome.detail, now, audit)

    def is_admin(self, mention: Mention) -> bool:
        """Return True when an admin sent ``mention`` (by id and full acct; fails closed).

        The intake's ``exempt``: an admin's command is never rate-limited away.
        """
        return self._role(mention)[0] is Role.ADMIN

    def dropped(self, mention: Mention, why: str, now: float) -> list[AuditEntry]:
        """Return the audit entry of a mention the intake dropped unrun (its ``audit_drop``)."""
        command = self._described(mention)
        return [AuditEntry(at=now, account_id=mention.account_id, acct=mention.acct,
                           command=command.name, args=command.args[:500],
                           result=f"dropped: {why}"[:500],
                           notification_id=mention.notification_id)]

    # --- helpers ------------------------------------------------------------------

    def _role(self, mention: Mention) -> tuple[Role, str]:
        sender = commands.Sender(mention.account_id, mention.acct, mention.bot,
                                 mention.visibility)
        return commands.role_of(sender, self.admins, local_domain=self.local_domain)

    def _text(self, mention: Mention) -> str:
        return commands.extract_text(mention.content, mention.spoiler_text, self.bot_acct,
                                     self.bot_account_id,
                                     [dataclasses.asdict(m) for m in mention.mentions])

    def _described(self, mention: Mention) -> Command:
        """Return the command ``mention`` asks for, for the audit; ``?`` when it is none."""
        try:
            text = self._text(mention)
        except Exception:  # the audit of a drop must not fail on hostile HTML
            return Command("?", "", "")
        try:
            return commands.parse(text)
        except CommandError:
            word, _, rest = text.partition(" ")
            name = word.casefold() if word.casefold() in commands.COMMANDS else "?"
            return Command(name, (rest if name != "?" else text)[:200], text)

    def _help(self, role: Role) -> str:
        return commands.help_text(role, public_commands=self.public_commands,
                                  confirm_enabled=self.confirm_enabled)

    def _answer(self, mention: Mention, text: str, now: float, detail: str,
                posts: Sequence[Post] = (),
                states: Mapping[str, dict[str, Any]] | None = None,
                thread: bool = False) -> Outcome:
        """Reply to ``mention``: one post, or with ``thread`` a short thread for a long answer."""
        visibility = reply_visibility(mention.visibility)
        if thread:
            answers = compose.reply_thread(reply_key(mention), mention.acct, text,
                                           status_id=mention.status_id, visibility=visibility,
                                           now=now, settings=self.settings)
        else:
            answers = (compose.reply(reply_key(mention), mention.acct, text,
                                     status_id=mention.status_id, visibility=visibility,
                                     now=now, settings=self.settings),)
        return Outcome(posts=(*posts, *answers), detail=detail, states=dict(states or {}))

    def _audited(self, outcome: Outcome, mention: Mention, command: Command, result: str,
                 now: float, audit: bool) -> Outcome:
        if not audit:
            return outcome
        entry = AuditEntry(at=now, account_id=mention.account_id, acct=mention.acct,
                           command=command.name, args=command.args[:500], result=result[:500],
                           notification_id=mention.notification_id)
        return dataclasses.replace(outcome, audit=(*outcome.audit, entry))

    def _incident_state(self) -> incidents.IncidentState:
        data = self.store.get_state(INCIDENT_STATE)
        if data is None:
            return incidents.IncidentState()
        try:
            return incidents.IncidentState.from_json(data)
        except ValueError as exc:
            raise CommandError(f"The incident state is unreadable ({exc}); "
                               f"see the bot's log.") from exc

    def _incident_change(self, mention: Mention, event: Event, state: incidents.IncidentState,
                         reply: str, now: float) -> Outcome:
        posts = compose.compose_event(event, self.snapshot(), self.settings)
        if event.kind is EventKind.RESOLVED:  # for the reports; idempotent by incident id
            History(self.store).record_incident(event.incident)
        return self._answer(mention, reply, now, f"{event.kind.value} {event.incident.id}",
                            posts=posts, states={INCIDENT_STATE: state.to_json()})

    # --- the commands -------------------------------------------------------------

    def _run(self, command: Command, role: Role, mention: Mention, now: float) -> Outcome:
        name, args = command.name, command.args
        state = self._incident_state()
        if name == "help":
            return self._answer(mention, self._help(role), now, "help")
        if name == "status" and role is not Role.ADMIN:
            return self._answer(mention, compose.member_status(
                state.open, self.snapshot(), now, self.settings), now, "status")
        if name in compose.ADMIN_DETAILS:
            return self._answer(mention, compose.admin_details(
                name, self.snapshot(), state.open, now, self.settings), now, name)
        if name == "incident":
            state, event = incidents.declare(state, args, now)
            return self._incident_change(mention, event, state,
                                         f"Posted to members as incident {event.incident.id}.",
                                         now)
        if name in {"update", "resolve"}:
            try:
                if name == "update":
                    state, event = incidents.note(state, args, now)
                else:
                    state, event = incidents.close(state, args, now)
            except ValueError as exc:
                raise CommandError(f"Nothing to {name}: {exc}.") from exc
            done = "Update posted" if name == "update" else "Resolved"
            return self._incident_change(mention, event, state,
                                         f"{done} in the thread of {event.incident.id}.", now)
        if name == "ack":
            state, said = incidents.acknowledge(state, now)
            return self._answer(mention, said[:1].upper() + said[1:] + ".", now, said,
                                states={INCIDENT_STATE: state.to_json()})
        if name in {"silence", "unsilence", "maintenance"}:
            return self._mutes(command, mention, now)
        if name in {"confirm", "discard"}:
            return self._confirm(name, mention, now)
        if name == "report":
            if self.latest_report is None:
                raise CommandError("No history is kept here (a dry run?), so there is no "
                                   "report to give.")
            return self._answer(mention, self.latest_report(now), now, "report")
        if name == "advise":
            if self.advice is None:
                raise CommandError("Capacity advice is not available here (no Redis reading "
                                   "yet, or a dry run).")
            return self._answer(mention, self.advice(now), now, "advise", thread=True)
        raise CommandError(f"\u201c{name}\u201d is not handled yet.")

    def _mutes(self, command: Command, mention: Mention, now: float) -> Outcome:
        mutes = [m for m in runtime_mutes(self.store) if m.end > now]
        by = f"@{mention.acct}"
        if command.name == "unsilence":
            kept = [m for m in mutes if m.kind != "silence"]
            gone = len(mutes) - len(kept)
            text = f"Lifted {gone} silence(s)." if gone else "No silence was active."
            return self._answer(mention, text, now, f"unsilence: {gone}",
                                states={MUTES_STATE: mutes_state(kept)})
        if command.name == "silence":
            silence = commands.parse_silence(command.args)
            components = (silence.component,) if silence.component else ()
            mute = RuntimeMute(secrets.token_hex(4), "silence", now, now + silence.seconds,
                               components, "", by)
            what = silence.component or "every alert"
            text = (f"Silenced {what} until "
                    f"{compose.local_time(mute.end, now, self.settings)}. New trouble there "
                    f"is not announced; unsilence lifts it.")
            return self._answer(mention, text, now, f"silence {what} for {silence.seconds:.0f} s",
                                states={MUTES_STATE: mutes_state([*mutes, mute])})
        window = commands.parse_maintenance(command.args, now, self.settings.timezone)
        mute = RuntimeMute(secrets.token_hex(4), "maintenance", window.start,
                           window.start + window.duration, (), window.text, by)
        announce = compose.maintenance_post(mute.id, "announce", mute.start, mute.end,
                                            mute.text, now, self.settings)
        text = (f"Maintenance announced to members: "
                f"{compose.local_time(mute.start, now, self.settings)} to "
                f"{compose.local_time(mute.end, now, self.settings)}. Alerts are muted then.")
        return self._answer(mention, text, now, f"maintenance {mute.id}", posts=(announce,),
                            states={MUTES_STATE: mutes_state([*mutes, mute])})

    def _confirm(self, name: str, mention: Mention, now: float) -> Outcome:
        pending = self.store.get_state(CONFIRM_STATE) or {}
        held = pending.get("posts") or []
        if not pending.get("incident") or pending.get("decided"):
            raise CommandError("No incident is waiting for confirmation.")
        decided = {**pending, "decided": name, "posts": []}
        if name == "discard":
            return self._answer(mention, f"Discarded: members are not told about "
                                         f"{pending['incident']}.", now,
                                f"discard {pending['incident']}",
                                states={CONFIRM_STATE: decided})
        posts = tuple(post_from_json(p) for p in held)
        return self._answer(mention, f"Published {len(posts)} post(s) about "
                                     f"{pending['incident']} to members.", now,
                            f"confirm {pending['incident']}", posts=posts,
                            states={CONFIRM_STATE: decided})
