"""Every text the bot posts, in one place, so that an admin can adapt or translate it.

``Wording`` holds the templates; ``DEFAULT_WORDING`` is the English text the bot
ships with. ``bot.compose`` turns it into posts and never writes a word of its
own; a few others read single texts from it (the reports, the adopter, ``check``)
and use ``neutral()`` for text that comes from Redis or the API. Report texts
live in ``report.ReportWording`` and command replies beside their commands.

How to adapt it: build a changed copy and pass it in ``compose.Settings``::

    wording = dataclasses.replace(DEFAULT_WORDING, notice_footer="Follow #status for news.")
    settings = compose.Settings(instance="example.social", wording=wording)

Call ``wording.problems()`` first (start-up, ``config-check``): it names every
template that uses a placeholder the composer does not fill in. Placeholders
are written ``{name}``; each field's docstring lists the ones it may use.

Member texts (everything except the ``admin_*`` fields) must speak of impact,
not internals: never "Sidekiq", "Redis", "queue", a queue's name, "latency",
"RSS" or "swap". ``tests/test_compose.py`` checks the defaults for such words.
Remember that the content warning counts towards the instance's character
limit, so keep the ``cw_*`` texts short. A translation also sets
``compose.Settings.language`` so that posts carry the right language code.

Text from outside (queue names, hostnames, errors, anything read from Redis, the
host or the API) goes through ``neutral`` before it is put in a post or printed.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields


@dataclass(frozen=True, slots=True)
class Impact:
    """How members experience trouble in one component, in three lengths.

    ``sentence`` is a whole sentence for notices ("Emails … are delayed.");
    ``noun`` names the thing in a sentence ("Back to normal: emails …",
    "Nothing is processing emails …"); ``short`` is a few words for the
    profile field ("Emails delayed").
    """

    sentence: str
    noun: str
    short: str


def _impacts() -> dict[str, Impact]:
    return {
        "queue:default": Impact(
            "Home timelines, notifications and some actions are delayed.",
            "home timelines, notifications and some actions",
            "Timelines and notifications delayed"),
        "queue:push": Impact(
            "Your posts reach people on other servers late.",
            "delivery of your posts to other servers",
            "Posts to other servers delayed"),
        "queue:ingress": Impact(
            "Posts from other servers arrive late.",
            "posts arriving from other servers",
            "Posts from other servers delayed"),
        "queue:pull": Impact(
            "Imports, exports, link previews and fetching remote content are slow.",
            "imports, exports, link previews and fetching remote content",
            "Imports and link previews slow"),
        "queue:mailers": Impact(
            "Emails (sign-up confirmations, password resets) are delayed.",
            "emails (sign-up confirmations, password resets)",
            "Emails delayed"),
        "queue:scheduler": Impact(
            "Scheduled posts and routine clean-up run late.",
            "scheduled posts and routine clean-up",
            "Scheduled posts delayed"),
        "queue:fasp": Impact(
            "Sharing with fediverse search and discovery services is delayed.",
            "sharing with fediverse search and discovery services",
            "Discovery services delayed"),
        "queue:*": Impact(
            "Some background tasks are delayed.",
            "some background tasks",
            "Background tasks delayed"),
        "unserved:*": Impact(
            "Background work has stopped; new posts, notifications and emails wait until it "
            "runs again.",
            "background work",
            "Background work stopped"),
        "memory": Impact(
            "The server is short on memory; pages may be slow or fail.",
            "the server's memory",
            "Server short on memory"),
        "swap": Impact(
            "The server is short on memory; pages may be slow or fail.",
            "the server's memory",
            "Server short on memory"),
        "memory@*": Impact(
            "One of our servers is short on memory; pages may be slow or fail.",
            "memory on one of our servers",
            "A server short on memory"),
        "swap@*": Impact(
            "One of our servers is short on memory; pages may be slow or fail.",
            "memory on one of our servers",
            "A server short on memory"),
        "disk": Impact(
            "The server is running out of disk space; uploads and new posts may fail.",
            "the server's disk space",
            "Server low on disk space"),
        "disk@*": Impact(
            "One of our servers is running out of disk space; uploads and new posts may fail.",
            "disk space on one of our servers",
            "A server low on disk space"),
        "host@*": Impact(
            "One of our servers is not responding; parts of the service may not work.",
            "one of our servers",
            "A server not responding"),
        "redis": Impact(
            "Background work has stopped; posting and notifications are affected.",
            "background work",
            "Background work stopped"),
        "dead": Impact(
            "Some background tasks keep failing; a few actions may not have gone through.",
            "background tasks that kept failing",
            "Some actions failing"),
        "web": Impact(
            "The website and apps may not load.",
            "the website and apps",
            "Website and apps may not load"),
        "streaming": Impact(
            "Live updates in apps may be delayed; refresh to see new posts.",
            "live updates in apps",
            "Live updates delayed"),
        "*": Impact(
            "Part of the service is not working normally.",
            "part of the service",
            "Some features affected"),
    }


HOST_KINDS = ("memory", "swap", "disk", "host")
"""Kinds of component judged per host, whose member wording has an ``@*`` form for another host
(``memory@db-1`` → ``memory@*``): impact only, the host is never named to members."""


def _months() -> tuple[str, ...]:
    return ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Wording:
    """All templates of member posts, admin messages and the profile field."""

    impacts: Mapping[str, Impact] = field(default_factory=_impacts)
    """Member wording per component: ``queue:<name>``, ``unserved:*`` (no live process at
    all), ``memory``, ``swap``, ``disk`` (any disk of this host), ``redis``, ``dead``, ``web``,
    ``streaming``; ``queue:*`` for a queue not listed, ``*`` for a component not listed.
    ``unserved:<name>`` is built from the queue's ``noun`` unless listed itself. Other
    hosts: ``memory@*``, ``swap@*``, ``disk@*``, ``host@*`` (not reporting), one wording for
    every host, never its name; ``memory@db-1`` may be listed for one host. The ``@*``
    wording also stands for this host's ``memory``, ``swap`` and ``disk`` when the instance
    has several hosts."""

    unserved_sentence: str = "Nothing is processing {noun} right now."
    """No process serves a queue. Placeholders: {noun} (the queue's impact noun)."""

    unserved_short: str = "On hold: {noun}"
    """Profile field wording for a queue no process serves. Placeholders: {noun}."""

    # --- content warnings (they count towards the character limit) ---
    cw_notice_warning: str = "Service notice: some delays"
    """CW of the opening notice when the incident is at warning level."""
    cw_notice_critical: str = "Service notice: disruption"
    """CW of the opening notice when the incident is critical."""
    cw_update: str = "Service update"
    """CW of updates (worse, better, something added or back to normal)."""
    cw_reminder: str = "Service notice: still ongoing"
    """CW of reminders."""
    cw_resolution: str = "Service notice: resolved"
    """CW of the resolution."""
    cw_resolution_muted: str = "Service notice: closed"
    """CW of a resolution that only ends the thread (``resolution_muted``)."""
    cw_catchup: str = "Service notices: catch-up"
    """CW of the catch-up post that folds notices the bot could not send in time."""

    # --- the opening notice ---
    notice_lead_warning: str = "Since {time}, parts of {instance} are slower than usual."
    """First line of a warning-level notice. Placeholders: {time}, {instance}."""
    notice_lead_critical: str = "Since {time}, parts of {instance} are not working properly."
    """First line of a critical notice. Placeholders: {time}, {instance}."""
    with_eta: str = "{sentence} Expected to catch up in about {duration}."
    """An impact sentence whose backlog is shrinking. Placeholders: {sentence}, {duration}."""
    notice_footer: str = "We will post updates in this thread."
    """Last line of the notice (dropped first when space is short)."""

    # --- updates ---
    update_worsened: str = "Update: the problem has got worse."
    """First line of an update when a component got worse."""
    update_improved: str = "Update: things are getting better."
    """First line of an update when a component got better."""
    update_added: str = "Update: something else is affected now."
    """First line of an update when another component joined the incident."""
    update_cleared: str = "Update: part of it is back to normal."
    """First line of an update when a component is fine again."""
    back_to_normal: str = "Back to normal: {nouns}."
    """Names what recovered in this update. Placeholders: {nouns}."""
    reminder: str = "Still ongoing since {time}. We have not forgotten it."
    """First line of a reminder. Placeholders: {time}."""

    # --- the resolution ---
    resolution: str = "Resolved after {duration}: {instance} works normally again."
    """First line of the resolution. Placeholders: {duration}, {instance}."""
    resolution_muted: str = (
        "The admins are taking care of this; there will be no further updates here.")
    """First line of the resolution when the incident ends only because what is left was
    silenced or is under maintenance. Placeholders: {duration}, {instance}."""
    resolution_affected: str = "What was affected: {nouns}."
    """Second line of the resolution. Placeholders: {nouns}."""
    resolution_worst_delay: str = "At worst, things ran about {duration} late."
    """Told when the longest delay is known. Placeholders: {duration}."""
    resolution_footer: str = "Thank you for your patience."
    """Last line of the resolution (dropped first when space is short)."""

    noun_separator: str = "; "
    """Between nouns in a list ("emails (…); the website and apps")."""

    # --- the periodic all-is-well post ---
    status: str = "✅ All normal on {instance}."
    """First line of the all-is-well post. Placeholders: {instance}."""
    status_processed: str = "{count} background tasks done today"
    """Placeholders: {count}."""
    status_wait: str = "longest wait {duration}"
    """Placeholders: {duration}."""
    status_memory: str = "memory {percent}% in use"
    """Placeholders: {percent}."""
    status_separator: str = " · "
    """Between the numbers of the all-is-well post."""

    # --- the profile field (at most 255 characters) ---
    profile_name: str = "Status"
    """Name of the profile field."""
    profile_ok: str = "✅ All normal · {time}"
    """Value when no incident is open. Placeholders: {time} (when it was checked)."""
    profile_trouble: str = "⚠️ {summary} · since {time}"
    """Value during an incident. Placeholders: {summary}, {time}."""
    profile_more: str = "{summary} (+{count} more)"
    """A summary with more components than it names. Placeholders: {summary}, {count}."""

    # --- the catch-up post ---
    catchup_lead: str = "Between {start} and {end}, this account could not post. What happened:"
    """First line of the catch-up. Placeholders: {start}, {end}."""
    catchup_entry: str = "{time}: {text}"
    """One folded notice. Placeholders: {time}, {text}."""
    catchup_omitted: str = "({count} earlier notices left out)"
    """Stands for the oldest notices when not all fit. Placeholders: {count}."""
    catchup_nothing: str = "No notices were missed."
    """When nothing was folded."""

    # --- admin messages (technical; jargon is welcome here) ---
    admin_header: str = "{instance}: incident {id} {kind}, {severity} (peak {peak})."
    """Placeholders: {instance}, {id}, {kind}, {severity}, {peak}."""
    admin_resolved: str = "{instance}: incident {id} resolved after {duration} (peak {peak})."
    """Placeholders: {instance}, {id}, {duration}, {peak}."""
    admin_reason: str = "Why: {reason}"
    """The event's reason: its kind and every change folded into it. Placeholders: {reason}."""
    admin_reminder: str = "Acknowledge the incident to stop the reminders."
    """Added to reminders."""
    admin_component: str = "{component} {severity} since {time}: {reason}{details}"
    """One affected component. Placeholders: {component}, {severity}, {time}, {reason},
    {details} (value, peak, eta; empty when none)."""
    admin_component_cleared: str = "{component} was {peak} from {time}: {reason}{details}"
    """A component that is fine again (in the resolution). Placeholders: {component}, {peak},
    {time}, {reason} (its last reason), {details}."""
    admin_queues: str = "Queues: {queues}"
    """Placeholders: {queues}."""
    admin_queues_more: str = "and {count} more queues"
    """Ends a queue list cut to the worst ones. Placeholders: {count}."""
    admin_components_more: str = "{total} components affected; {count} more not listed below."
    """Stands before a list of components cut to the worst ones. Placeholders: {total},
    {count}."""
    admin_processes_more: str = "and {count} more processes"
    """Ends a process list cut to the first ones. Placeholders: {count}."""
    admin_processes: str = (
        "Sidekiq: {live} live, {stale} stale processes; busy {busy}/{concurrency}; "
        "enqueued {enqueued}; retries {retries}; dead {dead}")
    """Placeholders: {live}, {stale}, {busy}, {concurrency}, {enqueued}, {retries}, {dead}."""
    admin_memory: str = "Memory: {available}% available ({free} of {total}); swap {swap}"
    """Placeholders: {available}, {free}, {total}, {swap}."""
    admin_host_error: str = "Host: not read ({error})"
    """Placeholders: {error}."""
    admin_hosts: str = "Other hosts: {hosts}"
    """One line of every other host's memory in admin messages. Placeholders: {hosts}."""
    admin_hosts_entry: str = "{host} {available}% memory available ({free} of {total})"
    """One reporting host in ``admin_hosts``. Placeholders: {host}, {available}, {free},
    {total}."""
    admin_hosts_silent: str = "{host} not reporting"
    """One host that is not reporting in ``admin_hosts``. Placeholders: {host}."""
    admin_hosts_more: str = "and {count} more hosts"
    """Ends a host list cut to the first ones. Placeholders: {count}."""

    # --- other hosts members do not hear about (admins only) ---
    admin_only_opened: str = (
        "{instance}: trouble on a host members do not hear about (admins only).")
    """First line of the admin message when a host that is not ``member_visible`` (its
    ``[[hosts]]`` entry) gets into trouble. Placeholders: {instance}."""
    admin_only_changed: str = "{instance}: update on hosts members do not hear about."
    """First line when that trouble changes (another host, worse, better, part of it
    fine). Placeholders: {instance}."""
    admin_only_resolved: str = (
        "{instance}: hosts members do not hear about are fine again after {duration}.")
    """First line when all of it is over. Placeholders: {instance}, {duration}."""
    admin_only_closed: str = (
        "{instance}: no more messages about hosts members do not hear about for now: what is "
        "left is silenced, under maintenance or muted by another problem.")
    """First line when what is left of that trouble is muted for another reason.
    Placeholders: {instance}."""
    admin_host_down: str = "host {host} is not reporting: {error}"
    """A host whose reading is missing (its agent's reading expired, its node_exporter
    failed). Placeholders: {host}, {error}."""
    admin_host_back: str = "host {host} is reporting again"
    """A host that reports again. Placeholders: {host}."""
    admin_component_fine: str = "{component} is fine again"
    """A component members do not hear about that is fine again. Placeholders: {component}."""
    admin_redis_up: str = "Redis: reachable{rtt}"
    """Placeholders: {rtt} (", 2.1 ms" or empty)."""
    admin_redis_down: str = "Redis: unreachable ({error})"
    """Placeholders: {error}."""
    admin_delivery_failed: str = (
        "{instance}: the instance refused a post for good ({error}); it was not published. "
        "Post {key}: {text}")
    """Sent once per refused post. Placeholders: {instance}, {error}, {key}, {text}."""

    # --- a lost state file (bot/adopt.py) ---
    adopted_resolution: str = "Resolved: {instance} works normally again."
    """Reply that closes a pinned notice found after the bot lost its state, when all is
    well by then (the notice is unpinned). Placeholders: {instance}."""
    admin_adopted_attached: str = (
        "{instance}: the bot started with an empty state file and found its pinned notice "
        "{status}. Incident {id} continues in that thread (no second notice).")
    """Placeholders: {instance}, {status} (status id), {id} (incident)."""
    admin_takeover_attached: str = (
        "{instance}: this bot took over from the leader and found its pinned notice "
        "{status}. Incident {id} continues in that thread (no second notice).")
    """After a standby takeover. Placeholders: {instance}, {status} (status id), {id}."""
    admin_takeover_resolved: str = (
        "{instance}: this bot took over from the leader and found its pinned notice "
        "{status}. All is well now: it gets a resolution reply and is unpinned.")
    """After a standby takeover. Placeholders: {instance}, {status} (status id)."""
    admin_adopted_resolved: str = (
        "{instance}: the bot started with an empty state file and found its pinned notice "
        "{status}. All is well now: it gets a resolution reply and is unpinned.")
    """Placeholders: {instance}, {status} (status id)."""
    admin_state_lost: str = (
        "{instance}: {problem}. The bot goes on with the copy it has open, but a restart "
        "starts from whatever is at that path then (an empty state picks up the pinned "
        "notice). statusbot healthcheck says unhealthy until the bot is restarted.")
    """Sent once when the state file disappears or is replaced while the bot runs.
    Placeholders: {instance}, {problem}."""

    admin_no_sidekiq: str = (
        "{instance}: the Redis I read ({redis}) holds no trace of Sidekiq: no queues, no "
        "processes, no processed jobs. Check [redis] url, the database number and the namespace "
        "(or mastodon_env_file). Members are not told: this looks like my configuration, not "
        "an outage.")
    """Sent once while the Redis read holds nothing Sidekiq ever wrote (again after it did).
    Placeholders: {instance}, {redis} (URL without password, and namespace)."""

    # --- the status page at run time (bot/pagetick.py, bot/publish.py) ---
    admin_page_unwritable: str = (
        "{instance}: the status page cannot be written: {error}. Posts are not affected. "
        "I keep trying; statusbot config-check says what is wrong with [page] dir.")
    """Sent once while the page's directory cannot be written. Placeholders: {instance},
    {error}."""
    admin_publish_failing: str = (
        "{instance}: the status page is not being published: {program} failed {count} times "
        "in a row, the last time because {error}. Members may see an old page. I keep "
        "retrying (at most every 30 min) and tell you when it works again.")
    """Sent once when ``[page] publish_command`` starts failing. Placeholders: {instance},
    {program} (the command's name, never its arguments), {count}, {error} (one of the
    ``admin_publish_*`` reasons below)."""
    admin_publish_recovered: str = (
        "{instance}: the status page is published again ({program} works again after "
        "failing for {duration}).")
    """Sent once when a failing ``[page] publish_command`` works again. Placeholders:
    {instance}, {program}, {duration} (since the admins were told)."""
    admin_publish_exit: str = "it exited with status {code}"
    """Why a run failed: a non-zero exit status. Placeholders: {code}."""
    admin_publish_signal: str = "it was ended by signal {signal}"
    """Why a run failed: a signal from elsewhere. Placeholders: {signal}."""
    admin_publish_timeout: str = "it did not finish within {duration} and was stopped"
    """Why a run failed: it ran past ``publish_timeout``. Placeholders: {duration}."""
    admin_publish_not_started: str = "it could not be started ({error})"
    """Why a run failed: no such program, not executable. Placeholders: {error}."""

    # --- maintenance (admin command) ---
    cw_maintenance: str = "Planned maintenance"
    """Content warning of maintenance posts."""
    maintenance_announce: str = (
        "Planned maintenance from {start} to {end}: {text}\n"
        "{instance} may be slow or unavailable during that time.")
    """Announcement when an admin plans a window. Placeholders: {start}, {end}, {text},
    {instance}."""
    maintenance_start: str = "Maintenance has started: {text}\nExpected to end at {end}."
    """Reply in the announcement's thread at the start. Placeholders: {end}, {text}."""
    maintenance_end: str = "Maintenance is over. Thank you for your patience."
    """Reply in the announcement's thread at the end. Placeholders: {text}."""

    # --- the status page (bot/page.py): index.html, feed.atom, api/v2/*.json ---
    page_title: str = "{instance} status"
    """Title of the page and of its feed. Placeholders: {instance}."""
    page_overall_ok: str = "All normal on {instance}."
    """The one line on top when nothing is wrong (also the JSON status description).
    Placeholders: {instance}."""
    page_overall_minor: str = "Parts of {instance} are slower than usual."
    """The line on top during a minor incident. Placeholders: {instance}."""
    page_overall_major: str = "Parts of {instance} are not working properly."
    """The line on top during a major incident. Placeholders: {instance}."""
    page_overall_critical: str = "{instance} is seriously disrupted."
    """The line on top when a part of the service has stopped. Placeholders: {instance}."""
    page_overall_maintenance: str = "Planned maintenance is under way on {instance}."
    """The line on top during maintenance without an incident. Placeholders: {instance}."""
    page_heading_parts: str = "Right now"
    """Heading of the list of the service's parts and their state."""
    page_part_timelines: str = "Timelines and notifications"
    """Name of a part of the service as members know it."""
    page_part_outgoing: str = "Your posts to other servers"
    """Name of a part of the service as members know it."""
    page_part_incoming: str = "Posts from other servers"
    """Name of a part of the service as members know it."""
    page_part_emails: str = "Emails"
    """Name of a part of the service as members know it."""
    page_part_imports: str = "Imports and link previews"
    """Name of a part of the service as members know it."""
    page_part_web: str = "Website and apps"
    """Name of a part of the service as members know it."""
    page_part_streaming: str = "Live updates"
    """Name of a part of the service as members know it."""
    page_state_operational: str = "Normal"
    """State of a part that works."""
    page_state_degraded: str = "Slow"
    """State of a part that is slower than usual."""
    page_state_partial: str = "Disrupted"
    """State of a part that partly fails."""
    page_state_major: str = "Stopped"
    """State of a part that does not work at all."""
    page_state_maintenance: str = "Maintenance"
    """State of a part under planned maintenance."""
    page_heading_incident: str = "Current incident"
    """Heading of the open incident."""
    page_since: str = "Since {time}."
    """When the open incident began. Placeholders: {time}."""
    page_heading_updates: str = "Updates"
    """Heading of the open incident's posts, in order."""
    page_post_link: str = "View this post on {instance}"
    """Text of the link to a post on the instance. Placeholders: {instance}."""
    page_not_posted: str = "Not yet posted on {instance}."
    """Said of a post the instance has not taken yet. Placeholders: {instance}."""
    page_heading_maintenance: str = "Planned maintenance"
    """Heading of the maintenance windows that have not ended."""
    page_maintenance_window: str = "From {start} to {end}: {text}"
    """One maintenance window. Placeholders: {start}, {end}, {text}."""
    page_heading_history: str = "The last {days} days"
    """Heading of the row of day cells. Placeholders: {days}."""
    page_availability: str = "Available {percent}% of the time watched."
    """Share of the watched time without an incident. Placeholders: {percent}."""
    page_never_watched: str = "Not watched yet."
    """Said instead of the availability when no time was watched."""
    page_day: str = "{date}: {state}"
    """One day cell (read out by screen readers, shown on hover). Placeholders: {date},
    {state}."""
    page_date: str = "{day} {month}"
    """A date in the day cells and past incidents. Placeholders: {day}, {month}, {year}."""
    page_day_ok: str = "no incident"
    """A watched day without incident."""
    page_day_minor: str = "slowdowns"
    """A day with a minor incident at worst."""
    page_day_major: str = "disruption"
    """A day with a major incident."""
    page_day_maintenance: str = "planned maintenance"
    """A day with maintenance and no incident."""
    page_day_unknown: str = "not watched"
    """A day the bot did not watch (enough): never shown as fine."""
    page_legend: str = "Each square is a day, oldest first."
    """Explains the row of day cells."""
    page_heading_past: str = "Past incidents"
    """Heading of the incidents resolved within the days shown."""
    page_past_incident: str = "{date}, {duration}: {nouns}"
    """One resolved incident. Placeholders: {date}, {duration}, {nouns}."""
    page_no_past: str = "No incidents in this time."
    """Said when no incident was resolved within the days shown."""
    page_checked: str = "Last checked {time}."
    """When the bot last looked. Placeholders: {time}."""
    page_never_checked: str = "Not checked yet."
    """Said before the bot's first look."""
    page_feeds: str = "Follow this page:"
    """Leads the links to the feed and the JSON files."""
    page_feed_link: str = "Atom feed"
    """Text of the link to the feed."""
    page_json_link: str = "JSON (Statuspage API v2)"
    """Text of the link to the JSON summary."""
    page_more_updates: str = "{count} earlier updates are not shown here."
    """Stands for the oldest posts when the open incident has too many. Placeholders: {count}."""

    # --- fallback accounts on other servers (bot/fallback.py) ---
    cw_fallback: str = "Service notice: {instance}"
    """CW of the posts of a fallback account (empty: none). Placeholders: {instance}."""
    fallback_notice: str = "{instance} cannot be reached since {time}. We are working on it."
    """First line of the notice a fallback account posts when the instance cannot be
    reached. Placeholders: {instance}, {time}."""
    fallback_update: str = "{instance} still cannot be reached (since {time}, {duration})."
    """First line of a follow-up in the fallback thread while the outage lasts.
    Placeholders: {instance}, {time}, {duration}."""
    fallback_news: str = "What members notice: {sentences}"
    """Tells the open incident's impacts in a fallback post. Placeholders: {sentences}."""
    fallback_resolution: str = (
        "{instance} can be reached again, after {duration}. Thank you for your patience.")
    """The reply that closes the fallback thread. Placeholders: {instance}, {duration}."""
    fallback_status: str = "Status: {url}"
    """Points to the status page (left out when [page] url is empty). Placeholders: {url}."""
    admin_fallback_refused: str = (
        "{instance}: the fallback account on {server} refused its token ({error}), so it "
        "cannot post there while {instance} is down. Check access_token_file or "
        "access_token_env of that [[fallback]].")
    """Sent once when a fallback server refuses the token. Placeholders: {instance},
    {server}, {error}."""

    # --- capacity advice, for admins only (bot/advice.py) ---
    admin_advice_none_behind: str = "No queue is behind."
    """The one line when no queue is behind (idle findings may follow)."""
    admin_advice_behind: str = "{queue}: {backlog} waiting, {trend}."
    """Leads the advice on one queue. Placeholders: {queue}, {backlog} (a count), {trend}
    (one of ``admin_advice_growing``, ``admin_advice_shrinking``, ``admin_advice_steady``)."""
    admin_advice_growing: str = "+{rate} a minute"
    """A growing backlog. Placeholders: {rate} (jobs)."""
    admin_advice_shrinking: str = "\N{MINUS SIGN}{rate} a minute"
    """A shrinking backlog. Placeholders: {rate} (jobs)."""
    admin_advice_steady: str = "not changing"
    """A backlog that neither grows nor shrinks."""
    admin_advice_needs: str = (
        "It needs about {needed} busy threads ({arrivals} jobs a minute \N{MULTIPLICATION SIGN} "
        "{seconds} a job \N{MULTIPLICATION SIGN} {margin} margin); about {busy} work on it now, "
        "on {serving}.")
    """What the queue needs and has (Little's law). Placeholders: {needed}, {arrivals},
    {seconds}, {margin}, {busy}, {serving} (the processes, or ``admin_advice_unserved``)."""
    admin_advice_serving: str = "the process serving {queues} (about {threads} of {concurrency})"
    """One process that serves the queue. Placeholders: {queues}, {threads}, {concurrency}."""
    admin_advice_unserved: str = "no live process"
    """Said when no live process serves the queue."""
    admin_advice_serving_more: str = "{count} more processes"
    """Stands for the processes not listed. Placeholders: {count}."""
    admin_advice_no_timings: str = (
        "Its job times are not known yet, so I cannot size a change for it.")
    """A queue behind without job timings (no metrics yet)."""
    admin_advice_catching_up: str = (
        "It catches up in about {duration} at this rate; no change needed.")
    """A queue behind that shrinks fast enough. Placeholders: {duration}."""
    admin_advice_change: str = (
        "One more process `{command}` would cost about {cost} ({available} available) and "
        "catch up in about {duration}. Set DB_POOL to at least {pool} for it.")
    """The change that fits. Placeholders: {command}, {cost}, {available}, {duration},
    {pool}."""
    admin_advice_change_slow: str = (
        "One more process `{command}` would cost about {cost} ({available} available) but "
        "would not catch up at this rate; it is the most that fits. Set DB_POOL to at least "
        "{pool} for it.")
    """A change that fits but does not catch up. Placeholders: {command}, {cost},
    {available}, {pool}."""
    admin_advice_memory_unknown: str = "an unknown amount"
    """Stands for {available} when the host's memory was not read."""
    admin_advice_memory_on_host: str = "{host}: {amount}"
    """Stands for {available} on an instance with several hosts: the host where a new
    process would run (the Sidekiq host with the most available). Placeholders: {host},
    {amount}."""
    admin_advice_nothing_fits: str = "Nothing fits: {reason}."
    """No change fits. Placeholders: {reason} (one of the ``admin_advice_no_*`` below)."""
    admin_advice_no_memory: str = (
        "one more process with a single thread needs about {cost} and {available} is available")
    """Not enough memory. Placeholders: {cost}, {available}."""
    admin_advice_no_connections: str = (
        "max_connections is the limit: {max}, {used} in use and {reserved} reserved leave "
        "no connection for more threads (keeping {margin} spare); raise max_connections or "
        "put PgBouncer in front")
    """No free database connections. Placeholders: {max}, {used}, {reserved}, {margin}."""
    admin_advice_no_pgbouncer: str = (
        "PostgreSQL behind PgBouncer has no free connections ({max} max, {used} in use, "
        "{reserved} reserved, {margin} kept spare); PgBouncer's pool, not max_connections, "
        "may be the real limit (statusbot does not read SHOW POOLS)")
    """No free connections behind PgBouncer. Placeholders: {max}, {used}, {reserved},
    {margin}."""
    admin_advice_make_room: str = (
        "To make room: fewer threads on the process serving {queues} ({peak} of {concurrency} "
        "ever busy at once) would free about {memory}.")
    """What could make room. Placeholders: {queues}, {peak}, {concurrency}, {memory}."""
    admin_advice_db_limit: str = (
        "max_connections is the limit: {max}, {used} in use and {reserved} reserved leave "
        "room for {threads} more threads (keeping {margin} spare); raise max_connections or "
        "put PgBouncer in front for more.")
    """max_connections is the real limit. Placeholders: {threads}, {max}, {used},
    {reserved}, {margin}."""
    admin_advice_pgbouncer_limit: str = (
        "PostgreSQL behind PgBouncer has room for {threads} more threads ({max} max, {used} "
        "in use, {reserved} reserved, {margin} kept spare), but PgBouncer's pool, not "
        "max_connections, may be the real limit: check its pool size (statusbot does not "
        "read SHOW POOLS).")
    """The free connections behind PgBouncer cut the change. Placeholders: {threads},
    {max}, {used}, {reserved}, {margin}."""
    admin_advice_db_unchecked: str = (
        "I could not check the database connections ({why}): make sure max_connections has "
        "room for {pool} more.")
    """Said when no database was read. Placeholders: {why} (``admin_advice_db_unconfigured``
    or the reading's error), {pool}."""
    admin_advice_db_unconfigured: str = "no [postgres] or DB_* in .env.production"
    """Why the database connections were not checked when none is configured."""
    admin_advice_database: str = (
        "Database connections: {used} of max_connections {max} in use ({applications}), "
        "{reserved} reserved; {free} free for more Sidekiq threads, keeping {margin} spare.")
    """The database reading, for admins. Placeholders: {used}, {max}, {applications} (name
    and count, ``admin_advice_db_unnamed`` for an empty name), {reserved}, {free},
    {margin}."""
    admin_advice_database_pgbouncer: str = (
        "The bot reaches PostgreSQL through PgBouncer: its pool, not max_connections, may be "
        "the limit (statusbot does not read SHOW POOLS).")
    """Follows ``admin_advice_database`` when the connection goes through PgBouncer."""
    admin_advice_database_unchecked: str = "Database connections not checked: {why}."
    """Said when the database was not read. Placeholders: {why}."""
    admin_advice_db_unnamed: str = "no application_name (Mastodon's web and Sidekiq)"
    """Stands for the connections without an ``application_name`` (Mastodon sets none)."""
    admin_advice_db_hidden: str = "hidden from statusbot's role: grant it pg_monitor"
    """Stands for the connections the reading role may not see the details of."""
    admin_advice_coarse: str = (
        "Coarse estimate: this Sidekiq keeps no job metrics, so the figures come from counters "
        "and backlog changes (about \N{PLUS-MINUS SIGN}50 %).")
    """Said once when any figure is a Sidekiq 6 estimate."""
    admin_advice_fit: str = (
        "Memory cost fitted from {count} processes: {base} + {per_thread} a thread "
        "(R\N{SUPERSCRIPT TWO} {r2}, \N{PLUS-MINUS SIGN}{error}).")
    """How sure the memory cost is. Placeholders: {count}, {base}, {per_thread}, {r2},
    {error}."""
    admin_advice_fit_guess: str = (
        "Memory cost is a guess ({why}): {base} + {per_thread} a thread.")
    """The memory cost could not be fitted. Placeholders: {why} (one of the
    ``admin_advice_guess_*`` below), {base}, {per_thread}."""
    admin_advice_guess_one: str = "only one process seen"
    """Why the memory cost is a guess: one process."""
    admin_advice_guess_same: str = "every process runs {concurrency} threads"
    """Why the memory cost is a guess: no spread. Placeholders: {concurrency}."""
    admin_advice_guess_none: str = "no process reported its memory"
    """Why the memory cost is a guess: no RSS at all."""
    admin_advice_guess_odd: str = "the processes' memory does not grow with their threads"
    """Why the memory cost is a guess: the fit gave a negative cost."""
    admin_advice_idle_threads: str = (
        "{peak} of {concurrency} threads were ever busy at once on the process serving {queues}.")
    """A process with idle threads (30 days). Placeholders: {peak}, {concurrency}, {queues}."""
    admin_advice_idle_memory: str = (
        "Peak use {peak} of {total}: a server with {size} would leave {left}.")
    """The server could be smaller. Placeholders: {peak}, {total}, {size}, {left}."""
    admin_advice_more: str = "{count} more queues are behind."
    """Stands for the queues behind not shown. Placeholders: {count}."""
    admin_advice_growth_unknown: str = (
        "Backlog growth was not measured (one reading): arrivals count only the jobs done.")
    """Said when the advice rests on one snapshot (no backlog growth)."""
    admin_advice_metrics_error: str = "Job metrics could not be read: {error}."
    """Said when Redis refused the job metrics read. Placeholders: {error}."""
    admin_advice_no_history: str = (
        "No history to look at: idle threads and server size are not judged.")
    """Said when no history was available for the 30-day peaks."""
    admin_advice_no_reading: str = (
        "No Sidekiq reading yet (Redis could not be read), so no advice.")
    """The ``advise`` reply before a good reading of Sidekiq."""
    admin_what_would_help: str = "What would help: {advice}"
    """The paragraph of capacity advice in the admin message when a queue incident opens
    (never in member posts). Placeholders: {advice}."""
    admin_advice_unit_mb: str = "{amount} MB"
    """Memory below 1 GB (MB of 2**20 bytes, as servers are sold). Placeholders: {amount}."""
    admin_advice_unit_gb: str = "{amount} GB"
    """Memory from 1 GB on (GB of 2**30 bytes). Placeholders: {amount}."""

    # --- times, durations, numbers ---
    time_today: str = "{clock} {zone}"
    """A time on the same day. Placeholders: {clock} ("14:05"), {zone} ("UTC", "CET")."""
    time_yesterday: str = "yesterday {clock} {zone}"
    """A time on the previous day. Placeholders: {clock}, {zone}."""
    time_other_day: str = "{day} {month} {clock} {zone}"
    """Any other day. Placeholders: {day}, {month}, {clock}, {zone}."""
    months: tuple[str, ...] = field(default_factory=_months)
    """Month names for ``time_other_day``, January first."""
    under_a_minute: str = "less than a minute"
    """A duration below one minute."""
    unit_day: str = "d"
    """Unit after a number of days."""
    unit_hour: str = "h"
    """Unit after a number of hours."""
    unit_minute: str = "min"
    """Unit after a number of minutes."""
    thousands_separator: str = ","
    """Groups digits in counts: 12,345."""

    def impact(self, component: str, several_hosts: bool = False) -> Impact:
        """Return the member wording of ``component`` (a Finding's component name).

        ``several_hosts``: the instance runs on several hosts, so this host's
        memory, swap and disk take the ``@*`` wording ("one of our servers").
        """
        head = component.partition(":")[0]
        kind, at, _ = head.partition("@")  # kind as health.component_kind
        several = kind in HOST_KINDS and (bool(at) or several_hosts)
        if several and not at and f"{kind}@*" in self.impacts:
            return self.impacts[f"{kind}@*"]
        if component in self.impacts:
            return self.impacts[component]
        if several and f"{kind}@*" in self.impacts:
            return self.impacts[f"{kind}@*"]
        if kind in HOST_KINDS and kind in self.impacts:
            return self.impacts[kind]
        if component.startswith("unserved:"):
            queue = self.impact("queue:" + component.removeprefix("unserved:"))
            return Impact(fill(self.unserved_sentence, noun=queue.noun),
                          queue.noun,
                          fill(self.unserved_short, noun=queue.noun))
        if component.startswith("queue:") and "queue:*" in self.impacts:
            return self.impacts["queue:*"]
        return self.impacts.get("*", _impacts()["*"])

    def problems(self) -> list[str]:
        """Return one message per template that uses a placeholder nobody fills in."""
        found: list[str] = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, str):
                found += _unknown(spec.name, value, PLACEHOLDERS.get(spec.name, ()))
        for name, impact in self.impacts.items():
            for part in ("sentence", "noun", "short"):
                found += _unknown(f"impacts[{name!r}].{part}", getattr(impact, part), ())
        if len(self.months) != 12:
            found.append(f"months: needs 12 names, got {len(self.months)}")
        return found


PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "unserved_sentence": ("noun",),
    "unserved_short": ("noun",),
    "notice_lead_warning": ("time", "instance"),
    "notice_lead_critical": ("time", "instance"),
    "with_eta": ("sentence", "duration"),
    "back_to_normal": ("nouns",),
    "reminder": ("time",),
    "resolution": ("duration", "instance"),
    "resolution_muted": ("duration", "instance"),
    "resolution_affected": ("nouns",),
    "resolution_worst_delay": ("duration",),
    "status": ("instance",),
    "status_processed": ("count",),
    "status_wait": ("duration",),
    "status_memory": ("percent",),
    "profile_ok": ("time",),
    "profile_trouble": ("summary", "time"),
    "profile_more": ("summary", "count"),
    "catchup_lead": ("start", "end"),
    "catchup_entry": ("time", "text"),
    "catchup_omitted": ("count",),
    "admin_header": ("instance", "id", "kind", "severity", "peak"),
    "admin_resolved": ("instance", "id", "duration", "peak"),
    "admin_reason": ("reason",),
    "admin_component": ("component", "severity", "time", "reason", "details"),
    "admin_component_cleared": ("component", "peak", "time", "reason", "details"),
    "admin_queues": ("queues",),
    "admin_queues_more": ("count",),
    "admin_components_more": ("total", "count"),
    "admin_processes_more": ("count",),
    "admin_processes": ("live", "stale", "busy", "concurrency", "enqueued", "retries", "dead"),
    "admin_memory": ("available", "free", "total", "swap"),
    "admin_host_error": ("error",),
    "admin_hosts": ("hosts",),
    "admin_hosts_entry": ("host", "available", "free", "total"),
    "admin_hosts_silent": ("host",),
    "admin_hosts_more": ("count",),
    "admin_only_opened": ("instance",),
    "admin_only_changed": ("instance",),
    "admin_only_resolved": ("instance", "duration"),
    "admin_only_closed": ("instance",),
    "admin_host_down": ("host", "error"),
    "admin_host_back": ("host",),
    "admin_component_fine": ("component",),
    "admin_redis_up": ("rtt",),
    "admin_redis_down": ("error",),
    "admin_delivery_failed": ("instance", "error", "key", "text"),
    "adopted_resolution": ("instance",),
    "admin_adopted_attached": ("instance", "status", "id"),
    "admin_adopted_resolved": ("instance", "status"),
    "admin_takeover_attached": ("instance", "status", "id"),
    "admin_takeover_resolved": ("instance", "status"),
    "admin_state_lost": ("instance", "problem"),
    "admin_no_sidekiq": ("instance", "redis"),
    "admin_page_unwritable": ("instance", "error"),
    "admin_publish_failing": ("instance", "program", "count", "error"),
    "admin_publish_recovered": ("instance", "program", "duration"),
    "admin_publish_exit": ("code",),
    "admin_publish_signal": ("signal",),
    "admin_publish_timeout": ("duration",),
    "admin_publish_not_started": ("error",),
    "maintenance_announce": ("start", "end", "text", "instance"),
    "maintenance_start": ("end", "text"),
    "maintenance_end": ("text",),
    "page_title": ("instance",),
    "page_overall_ok": ("instance",),
    "page_overall_minor": ("instance",),
    "page_overall_major": ("instance",),
    "page_overall_critical": ("instance",),
    "page_overall_maintenance": ("instance",),
    "page_since": ("time",),
    "page_post_link": ("instance",),
    "page_not_posted": ("instance",),
    "page_maintenance_window": ("start", "end", "text"),
    "page_heading_history": ("days",),
    "page_availability": ("percent",),
    "page_day": ("date", "state"),
    "page_date": ("day", "month", "year"),
    "page_past_incident": ("date", "duration", "nouns"),
    "page_checked": ("time",),
    "page_more_updates": ("count",),
    "cw_fallback": ("instance",),
    "fallback_notice": ("instance", "time"),
    "fallback_update": ("instance", "time", "duration"),
    "fallback_news": ("sentences",),
    "fallback_resolution": ("instance", "duration"),
    "fallback_status": ("url",),
    "admin_fallback_refused": ("instance", "server", "error"),
    "admin_advice_behind": ("queue", "backlog", "trend"),
    "admin_advice_growing": ("rate",),
    "admin_advice_shrinking": ("rate",),
    "admin_advice_needs": ("needed", "arrivals", "seconds", "margin", "busy", "serving"),
    "admin_advice_serving": ("queues", "threads", "concurrency"),
    "admin_advice_serving_more": ("count",),
    "admin_advice_catching_up": ("duration",),
    "admin_advice_change": ("command", "cost", "available", "duration", "pool"),
    "admin_advice_change_slow": ("command", "cost", "available", "pool"),
    "admin_advice_nothing_fits": ("reason",),
    "admin_advice_no_memory": ("cost", "available"),
    "admin_advice_no_connections": ("used", "max", "reserved", "margin"),
    "admin_advice_no_pgbouncer": ("used", "max", "reserved", "margin"),
    "admin_advice_make_room": ("queues", "peak", "concurrency", "memory"),
    "admin_advice_db_limit": ("threads", "used", "max", "reserved", "margin"),
    "admin_advice_pgbouncer_limit": ("threads", "used", "max", "reserved", "margin"),
    "admin_advice_db_unchecked": ("why", "pool"),
    "admin_advice_database": ("used", "max", "applications", "reserved", "free", "margin"),
    "admin_advice_database_unchecked": ("why",),
    "admin_advice_fit": ("count", "base", "per_thread", "r2", "error"),
    "admin_advice_fit_guess": ("why", "base", "per_thread"),
    "admin_advice_guess_same": ("concurrency",),
    "admin_advice_idle_threads": ("peak", "concurrency", "queues"),
    "admin_advice_idle_memory": ("peak", "total", "size", "left"),
    "admin_advice_memory_on_host": ("host", "amount"),
    "admin_advice_more": ("count",),
    "admin_advice_metrics_error": ("error",),
    "admin_what_would_help": ("advice",),
    "admin_advice_unit_mb": ("amount",),
    "admin_advice_unit_gb": ("amount",),
    "time_today": ("clock", "zone"),
    "time_yesterday": ("clock", "zone"),
    "time_other_day": ("day", "month", "clock", "zone"),
}
"""The placeholders each template may use; a template not listed takes none."""


def _unknown(name: str, template: str, allowed: tuple[str, ...]) -> list[str]:
    try:
        used = [part[1] for part in string.Formatter().parse(template) if part[1] is not None]
    except ValueError as exc:
        return [f"{name}: {exc}"]
    return [f"{name}: unknown placeholder {{{placeholder}}}"
            + (f" (use {', '.join('{' + a + '}' for a in allowed)})" if allowed else
               " (this text takes none; write {{ and }} for braces)")
            for placeholder in used if placeholder not in allowed]


class _Keep(dict[str, str]):
    """Leaves a placeholder it does not know as it was, instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, **values: str) -> str:
    """Fill in a template: ``fill(wording.reminder, time="14:05 UTC")``.

    Never raises: a placeholder nobody fills in stays visible as it was
    (``Wording.problems`` reports it), and a malformed template is returned as is.
    """
    try:
        return template.format_map(_Keep(values))
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):
        return template


DEFAULT_WORDING = Wording()
"""The English wording the bot ships with."""


# --- outside text ------------------------------------------------------------------------

NAME_LIMIT = 80
"""Most characters a name from Redis or the API (queue, process, host) keeps in a text."""

TEXT_LIMIT = 300
"""Most characters a longer outside text (an error, a reason) keeps in a text."""

_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?"  # CSI: colours, cursor moves
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|.)?|\x9b[0-?]*[ -/]*[@-~]?", re.DOTALL)
_SCHEME = re.compile(r"://|(?<![\w+.-])(xmpp|magnet|mailto|tel|web\+\w+):", re.IGNORECASE)
_DOMAIN_DOT = re.compile(r"\.(?=[^\W\d_])")
_SPACES = re.compile(r"\s+")
_LOOK_ALIKES = str.maketrans({"@": "\N{FULLWIDTH COMMERCIAL AT}", "#": "\N{MUSIC SHARP SIGN}",
                              "\N{FULLWIDTH NUMBER SIGN}": "\N{MUSIC SHARP SIGN}",
                              "\N{SMALL NUMBER SIGN}": "\N{MUSIC SHARP SIGN}"})


def neutral(text: object, limit: int = NAME_LIMIT) -> str:
    """Return outside text (from Redis, the API, the host) made safe to post or print.

    It can form no mention (``@`` becomes FULLWIDTH COMMERCIAL AT, which
    Mastodon's mention pattern does not take), no hashtag (``#`` and FULLWIDTH
    NUMBER SIGN become MUSIC SHARP SIGN), no link (the colon of ``://`` becomes
    RATIO, a dot before a letter becomes ONE DOT LEADER so no domain is left,
    and ``xmpp:``-like schemes lose their colon). Terminal escape
    sequences, control and format characters (bidi overrides, zero-width
    characters, NUL) are removed; line breaks and runs of blanks become one
    space. At most ``limit`` characters are kept, the last one "…" when cut.
    Work is linear and bounded: only the first ``4 * limit + 64`` characters
    are looked at.
    """
    raw = str(text)[:4 * limit + 64]
    raw = _ESCAPE.sub("", raw)
    kept = "".join(_visible(char) for char in raw)
    kept = _SPACES.sub(" ", kept).strip()
    kept = _SCHEME.sub(lambda m: "\N{RATIO}//" if m.group(1) is None
                       else m.group(1) + "\N{RATIO}", kept)
    kept = _DOMAIN_DOT.sub("\N{ONE DOT LEADER}", kept).translate(_LOOK_ALIKES)
    if len(kept) <= limit:
        return kept
    return kept[:max(0, limit - 1)].rstrip() + "\N{HORIZONTAL ELLIPSIS}" if limit > 0 else ""


def _visible(char: str) -> str:
    """``char`` itself, a space for a line break or tab, nothing for a control character."""
    category = unicodedata.category(char)
    if category[0] != "C" and category not in ("Zl", "Zp"):
        return char
    return " " if char.isspace() else ""
