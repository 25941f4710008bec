"""Every default the bot uses, once, with its unit.

``config.toml.example`` repeats these values in comments; a test keeps the two
in step.
"""

from __future__ import annotations

REDIS_URL = "redis://127.0.0.1:6379/0"
"""Where Sidekiq's Redis is when nothing else says so (the ``REDIS_URL``
environment variable wins over it when no config file names a URL)."""

REDIS_NAMESPACE = ""
"""Key prefix of redis-namespace (Mastodon ≤ 4.3 with ``REDIS_NAMESPACE``); empty: none."""

REDIS_SOCKET_TIMEOUT = 5.0
"""Seconds to wait for Redis to connect or answer before the reading counts as failed."""

MASTODON_QUEUES = ("default", "push", "ingress", "mailers", "pull", "scheduler", "fasp")
"""Mastodon's Sidekiq queues (``config/sidekiq.yml``, ``fasp`` from 4.4), in order of importance."""

PROCESS_STALE_AFTER = 0.0
"""Seconds without a heartbeat after which a Sidekiq process counts as stale.
0 means automatic: three heartbeats, 15 s for Sidekiq 6 and 30 s for 7 and later."""

BEAT_INTERVAL_SIDEKIQ6 = 5.0
"""Seconds between heartbeats of Sidekiq ≤ 6.5 (launcher.rb BEAT_PAUSE)."""

BEAT_INTERVAL_SIDEKIQ7 = 10.0
"""Seconds between heartbeats of Sidekiq ≥ 7.0 (launcher.rb BEAT_PAUSE)."""

MISSED_BEATS_STALE = 3
"""How many missed heartbeats make a process stale when ``stale_after`` is automatic."""

MAX_ANOMALY_EXAMPLES = 20
"""How many examples of malformed Redis data a snapshot keeps (all are counted)."""

DISK_PATHS = ("/",)
"""Filesystems whose usage the host reading reports."""

# --- capacity advice (bot/advice.py) ---

ADVICE_MARGIN = 1.25
"""Factor on the busy threads Little's law gives (arrivals * mean job time), so a queue
keeps up through bursts: 1.25 means a quarter more threads than the average need."""

ADVICE_CATCH_UP_TARGET = 1800.0
"""Seconds within which a suggested change should work off a backlog; a backlog that
shrinks this fast already gets no change."""

ADVICE_BEHIND_WAIT = 60.0
"""Seconds of work waiting (backlog / jobs done per second) from which a queue is behind."""

ADVICE_BEHIND_MIN_JOBS = 10
"""Fewest waiting jobs for a queue to count as behind, whatever its pace."""

ADVICE_MAX_THREADS = 25
"""Most threads the advisor suggests for one Sidekiq process (``-c``); beyond it a Ruby
process gains little and holds many database connections."""

ADVICE_PROCESS_BASE = 250 * 2**20
"""Bytes a Mastodon Sidekiq process takes before its threads, assumed when the processes
seen cannot be fitted (one process, or all with the same concurrency)."""

ADVICE_THREAD_COST = 10 * 2**20
"""Bytes one more Sidekiq thread costs, assumed when the processes seen cannot be fitted."""

ADVICE_GUESS_MARGIN = 0.25
"""Share added to a guessed memory cost before checking that it fits."""

ADVICE_MEMORY_RESERVE = 256 * 2**20
"""Bytes of available memory a suggested change must leave untouched (page cache, spikes)."""

ADVICE_DB_RESERVED = 3
"""Connections PostgreSQL keeps for superusers (``superuser_reserved_connections``), which
Sidekiq threads can never use."""

ADVICE_DB_MARGIN = 5
"""Connections the advice leaves free beyond those in use and reserved: a reading is one
moment, and the web's pool, a ``rails console``, a migration or a backup need room too."""

POSTGRES_PORT = 5432
"""PostgreSQL's port when neither ``[postgres]`` nor ``.env.production`` names one."""

PGBOUNCER_PORT = 6432
"""PgBouncer's usual port: a connection there is taken to go through PgBouncer."""

POSTGRES_TIMEOUT = 5.0
"""Seconds one database reading may take in all (connecting and the queries); past it the
reading fails with a one-line reason and the tick goes on."""

POSTGRES_TIMEOUT_MIN = 1.0
"""Seconds: the shortest ``[postgres] connect_timeout`` accepted."""

POSTGRES_TIMEOUT_MAX = 60.0
"""Seconds: the longest ``[postgres] connect_timeout`` accepted (the advice waits that long
at most)."""

POSTGRES_READ_INTERVAL = 60.0
"""Seconds a database reading is reused: issue 10 allows the advice's extra reads once a
minute."""

POSTGRES_MAX_APPLICATIONS = 20
"""Application names kept from ``pg_stat_activity`` (the most connections first); the rest
are counted together."""

ADVICE_IDLE_SHARE = 0.5
"""A process counts as idle when at most this share of its threads were ever busy at once."""

ADVICE_SERVER_SIZES_GB = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Server memory sizes (GB of 2**30 bytes) considered for "a smaller server would do"."""

ADVICE_SERVER_HEADROOM = 0.2
"""Share of a smaller server's memory that must stay free at the peak for it to be named."""

ADVICE_MAX_QUEUES = 10
"""Most queues behind that one advice lists (the rest are counted)."""

ADVICE_MAX_IDLE = 5
"""Most idle-resource findings that one advice lists."""

CPU_SAMPLE_MIN = 0.25
"""Seconds a one-off reading waits after priming psutil's CPU counter, so that the
first CPU percentage means something."""

MILLISECONDS_THRESHOLD = 1e11
"""An epoch timestamp above this is in milliseconds (Sidekiq 8), below it in seconds."""

USER_AGENT = "statusbot (Mastodon instance health bot)"
"""User-Agent of every HTTP request the bot makes."""

HEALTH_TIMEOUT = 10.0
"""Seconds to wait for the instance's /health and streaming health endpoints."""

INTERVAL = 30.0
"""Seconds between ticks of ``statusbot run`` (collect, evaluate, post)."""

HOST_TIMEOUT = 5.0
"""Seconds to wait for one ``[[hosts]]`` node_exporter; hosts are read concurrently."""

HOST_TIMEOUT_MIN = 0.1
"""Seconds: the shortest ``[[hosts]] timeout`` accepted."""

HOST_TIMEOUT_MAX = 60.0
"""Seconds: the longest ``[[hosts]] timeout`` accepted (the tick waits that long at most)."""

HOSTS_MAX = 64
"""Most ``[[hosts]]`` entries a configuration may have."""

HOST_NAME_MAX = 64
"""Longest ``[[hosts]] name`` (letters, digits, ``.``, ``_`` and ``-``)."""

HOST_ROLE_MAX = 32
"""Longest ``[[hosts]] role`` text, in characters."""

EXPORTER_BODY_MAX = 8 * 1024 * 1024
"""Bytes: the most of a node_exporter's ``/metrics`` reply read; a longer one is an error."""

AGENT_REDIS_USER = "statusbot-agent"
"""Redis ACL user of ``statusbot agent`` and the standby lease (may write ``statusbot:*`` only)."""

HOST_KEY_PREFIX = "statusbot:host:"
"""Redis key of an agent's reading: this prefix plus the host's name."""

HOSTS_KEY = "statusbot:hosts"
"""Redis set of the host names agents have announced."""

HOST_EXPIRY_INTERVALS = 3
"""An agent's reading expires after this many of its intervals: the host is then not reporting."""

LEADER_KEY = "statusbot:leader"
"""Redis key of the standby lease (``SET NX PX``); holds the leader's id."""

HEARTBEAT_FILE = "last-tick"
"""File in the state directory holding the time of the last completed tick."""

HEALTHCHECK_SLACK = 60.0
"""``statusbot healthcheck`` fails when no tick completed for 3 intervals plus this (s)."""

STATE_DIR = "statusbot-state"
"""Where the SQLite state file lives; relative paths are relative to the working directory."""

REQUEST_TIMEOUT = 15.0
"""Seconds to wait for the Mastodon API before a request counts as failed (and is retried)."""

ACCESS_TOKEN_ENV = "STATUSBOT_ACCESS_TOKEN"  # noqa: S105 - a variable name, not a secret
"""Environment variable holding the bot account's access token, unless a file is named."""

LANGUAGE = "en"
"""ISO 639 language code of the bot's posts."""

TIMEZONE = "UTC"
"""Time zone of the times in member posts ("since 14:05")."""

MEMBER_VISIBILITY = "public"
"""Visibility of incident notices, updates and resolutions: public or unlisted."""

STATUS_VISIBILITY = "unlisted"
"""Visibility of the periodic all-is-well status post."""

STATUS_EVERY = 86400.0
"""Seconds between all-is-well status posts (0: never); skipped while an incident is open."""

REMINDER_EVERY = 7200.0
"""Seconds without news after which an open incident gets a reminder post."""

MAX_REMINDERS = 3
"""At most this many reminders per incident."""

# --- Delivery ---

STATE_FILE = "statusbot.sqlite3"
"""Name of the SQLite state file (WAL) inside the state directory."""

STATE_CACHE_KIB = 64
"""SQLite page cache of the state file, KiB (SQLite's default is 2000 KiB).

Small on purpose: the cache fills as the history grows, so its cap is memory the bot
gains over its first quarter hour; 64 KiB fills within the first minute. Reads beyond
it come from the OS page cache (see bench/RESULTS.md, soak)."""

STATE_STATEMENTS = 16
"""Prepared statements kept by the state connection (Python's default, 128, holds ~0.3 MB)."""

IDEMPOTENCY_WINDOW = 3000.0
"""Seconds during which re-sending a post with the same Idempotency-Key is safe.
Mastodon keeps a key for 3600 s; the 600 s margin covers request timeouts and clock skew.
A member notice still unsent after this long is folded into one catch-up post."""

BACKOFF_BASE = 30.0
"""Seconds to wait before the first retry after a network error, timeout or 5xx."""

BACKOFF_CAP = 900.0
"""Upper bound in seconds of the exponential backoff (30, 60, 120, ... 900 s)."""

BACKOFF_JITTER = 0.0
"""Fraction of random spread added to each backoff delay (0.1: up to +10 %); 0: none."""

RATELIMIT_FALLBACK_WAIT = 300.0
"""Seconds to wait after a 429 whose X-RateLimit-Reset is missing or unreadable."""

RATELIMIT_MAX_WAIT = 10800.0
"""Longest wait in seconds a 429 may impose (Mastodon's longest window, statuses per 3 h)."""

DELIVERY_BUDGET = 10
"""At most this many API calls per delivery pass (one tick); the rest waits for the next."""

OUTBOX_RETENTION = 35 * 86400.0
"""Seconds a sent, failed or folded outbox row is kept (thread ids of old incidents)."""

INSTANCE_MAX_CHARACTERS = 500
"""Status length limit when the instance does not say (``configuration.statuses``)."""

INSTANCE_DESCRIPTION_LIMIT = 1500
"""Alt-text length limit when the instance does not say (``configuration.media_attachments``)."""

INSTANCE_MAX_PINNED = 5
"""Pinned-post limit when the instance does not say (``configuration.accounts``)."""

INSTANCE_MAX_PROFILE_FIELDS = 4
"""Profile field limit when the instance does not say (``configuration.accounts``)."""

INSTANCE_CHARACTERS_PER_URL = 23
"""Characters a link counts for when the instance does not say (``configuration.statuses``)."""

# --- Detection rules (bot/health.py) ---

QUEUE_LATENCY = (
    ("default", 60.0, 300.0),
    ("push", 300.0, 1800.0),
    ("ingress", 300.0, 1800.0),
    ("mailers", 300.0, 1800.0),
    ("pull", 1800.0, 7200.0),
    ("scheduler", 300.0, 1800.0),
    ("fasp", 600.0, 3600.0),
    ("*", 600.0, 3600.0),
)
"""Per queue: (name, warning, critical) in seconds of latency (age of the oldest job).
``*`` is any queue not listed. ``default`` carries home feeds and notifications, so
members notice a minute; ``pull`` (link previews, imports, remote fetches) is slow by nature."""

QUEUE_LATENCY_FOR = 120.0
"""Seconds a queue's latency must stay at a level before its finding fires at that level."""

QUEUE_LATENCY_CLEAR_FRACTION = 0.5
"""A queue's finding clears below this fraction of its warning latency (0.5: half)."""

QUEUE_LATENCY_CLEAR_FOR = 300.0
"""Seconds a queue's latency must stay below its clear level before the finding clears."""

UNSERVED_WARNING = 30.0
"""Seconds a queue has had jobs and no live process serving it before a warning
(also: seconds with no live Sidekiq process at all). Rides out a Sidekiq restart."""

UNSERVED_CRITICAL = 60.0
"""Seconds a queue has had jobs and no live process serving it before it is critical."""

UNSERVED_CLEAR_FOR = 60.0
"""Seconds a queue must be served again before its unserved finding clears."""

MEMORY_AVAILABLE_WARNING = 10.0
"""Percent of memory available (MemAvailable / total) at or below which memory is a warning."""

MEMORY_AVAILABLE_CRITICAL = 5.0
"""Percent of memory available at or below which memory is critical (the OOM killer is near)."""

MEMORY_AVAILABLE_CLEAR = 15.0
"""Percent of memory available above which a memory finding clears."""

MEMORY_AVAILABLE_FOR = 60.0
"""Seconds memory must stay low before its finding fires (media conversions spike briefly)."""

MEMORY_AVAILABLE_CLEAR_FOR = 300.0
"""Seconds memory must stay above its clear level before the finding clears."""

SWAP_USED_WARNING = 50.0
"""Percent of swap used at or above which swap is a warning (0 % when there is no swap)."""

SWAP_USED_CRITICAL = 80.0
"""Percent of swap used at or above which swap is critical."""

SWAP_USED_CLEAR = 40.0
"""Percent of swap used below which a swap finding clears. Linux leaves pages in swap
until they are touched, so swap use falls slowly even after the pressure is over."""

SWAP_USED_FOR = 300.0
"""Seconds swap use must stay high before its finding fires."""

SWAP_USED_CLEAR_FOR = 600.0
"""Seconds swap use must stay below its clear level before the finding clears."""

DISK_USED_WARNING = 90.0
"""Percent of a filesystem used at or above which its disk finding is a warning (every host's
disks: the configured paths here, the filesystems an agent or node_exporter reports there)."""

DISK_USED_CRITICAL = 95.0
"""Percent of a filesystem used at or above which it is critical (uploads and PostgreSQL's
writes fail soon)."""

DISK_USED_FOR = 300.0
"""Seconds a disk must stay full before its finding fires (a backup or a dump fills it briefly)."""

DISK_USED_CLEAR = 85.0
"""Percent of a filesystem used below which a disk finding clears."""

DISK_USED_CLEAR_FOR = 600.0
"""Seconds a disk must stay below its clear level before the finding clears."""

HOST_NOT_REPORTING_WARNING = 60.0
"""Seconds another host has not reported before a warning. An agent's reading is only missed
once it expired (``HOST_EXPIRY_INTERVALS`` intervals), so this adds a minute on top; a
node_exporter that misses one scrape is not news."""

HOST_NOT_REPORTING_CRITICAL = 1800.0
"""Seconds another host has not reported before it is critical (half an hour: not a restart)."""

HOST_NOT_REPORTING_CLEAR_FOR = 60.0
"""Seconds a host must report again before its not-reporting finding clears."""

DEAD_GROWTH_WARNING = 50.0
"""Jobs added to Sidekiq's dead set within the last hour at which dead growth is a warning."""

DEAD_GROWTH_CRITICAL = 500.0
"""Jobs added to the dead set within the last hour at which dead growth is critical."""

DEAD_GROWTH_CLEAR = 25.0
"""Jobs added to the dead set within the last hour below which the finding clears."""

DEAD_GROWTH_CLEAR_FOR = 600.0
"""Seconds dead growth must stay below its clear level before the finding clears."""

DEAD_SAMPLE_SPACING = 300.0
"""Seconds between the dead-set samples kept for the last hour (at most 13 of them)."""

REDIS_UNREACHABLE_WARNING = 15.0
"""Seconds Redis has been unreachable before a warning."""

REDIS_UNREACHABLE_CRITICAL = 30.0
"""Seconds Redis has been unreachable before it is critical (all background work stops)."""

REDIS_UNREACHABLE_CLEAR_FOR = 60.0
"""Seconds Redis must be reachable again before its finding clears."""

WEB_DOWN_WARNING = 60.0
"""Seconds the instance's /health has failed before a warning (a restart takes less)."""

WEB_DOWN_CRITICAL = 90.0
"""Seconds the instance's /health has failed before it is critical."""

WEB_DOWN_CLEAR_FOR = 120.0
"""Seconds /health must answer again before its finding clears."""

STREAMING_DOWN_WARNING = 120.0
"""Seconds the streaming health endpoint has failed before a warning (apps fall back to polling)."""

STREAMING_DOWN_CRITICAL = 900.0
"""Seconds the streaming health endpoint has failed before it is critical."""

STREAMING_DOWN_CLEAR_FOR = 120.0
"""Seconds the streaming health endpoint must answer again before its finding clears."""

FLAP_WINDOW = 3600.0
"""Seconds over which a component's severity changes are counted for flap holding (0: off)."""

FLAP_CHANGES = 4
"""More severity changes than this within the flap window hold a component as flapping."""

QUEUE_RATE_SAMPLES = 4
"""(time, size) samples kept per queue to estimate how fast a backlog shrinks."""

QUEUE_RATE_SPACING = 60.0
"""Seconds between a queue's size samples: the catch-up estimate spans about 3 to 4 min."""

# --- Incidents and posts ---

INSTANCE_NAME = "this server"
"""How member posts name the instance when no name is configured ("parts of this server …")."""

PROFILE_FIELD_MAX = 255
"""Characters allowed in a profile field's name and in its value."""

# --- Mentions ---

MENTIONS_BACKFILL_EVERY = 300.0
"""Seconds between polling backfills of mention notifications while the stream is up
(12 paginated requests an hour when nothing is missed; Mastodon allows 300 per 15 min)."""

MENTIONS_PAGE_LIMIT = 40
"""Notifications asked for per page (Mastodon allows up to 80, mastodon-mock 40)."""

MENTIONS_MAX_PAGES = 10
"""At most this many pages per backfill; the rest is fetched by the next one."""

MENTIONS_PAGINATED_BUDGET = 100
"""Paginated requests (``min_id``) the intake may make per ``MENTIONS_PAGINATED_WINDOW``:
a third of Mastodon's 300 per 15 min per account, whatever reconnects and floods do."""

MENTIONS_PAGINATED_WINDOW = 900.0
"""Seconds over which ``MENTIONS_PAGINATED_BUDGET`` refills (Mastodon's window: 15 min)."""

MENTIONS_STREAM_TIMEOUT = 60.0
"""Seconds without a byte (Mastodon sends a heartbeat every 15 s) after which the user
stream counts as dead and reconnects."""

MENTIONS_STREAM_RECONNECT_WAIT = 5.0
"""Seconds Mastodon.py waits between attempts to reconnect the user stream (a multiple
of 0.5)."""

MENTIONS_RESTART_BASE = 5.0
"""Seconds before restarting a stream whose thread died; doubles per death in a row."""

MENTIONS_RESTART_CAP = 300.0
"""Upper bound in seconds of the stream restart backoff."""

MENTIONS_RETRY_BASE = 30.0
"""Seconds before retrying a backfill that failed (network, 5xx); doubles per failure."""

MENTIONS_RETRY_CAP = 900.0
"""Upper bound in seconds of the backfill retry backoff."""

MENTIONS_MAX_AGE = 3600.0
"""Seconds after which a mention is too old to act on (after an outage, or when the bot
starts for the first time): it is marked handled as "stale" and not answered."""

MENTIONS_QUEUE_SIZE = 10000
"""Stream mentions waiting for the loop thread; beyond this they are dropped (the
next backfill fetches them)."""

MENTIONS_ANSWER_BOTS = False
"""Whether mentions from accounts flagged as bots are answered (two bots answering
each other would never stop); they are marked handled as "ignored"."""

NOTIFICATION_RETENTION = 35 * 86400.0
"""Seconds a handled notification id is remembered (far beyond ``MENTIONS_MAX_AGE``)."""

AUDIT_RETENTION = 90 * 86400.0
"""Seconds an audit row is kept (``statusbot audit``); older rows are pruned."""

AUDIT_MAX_ROWS = 10000
"""At most this many audit rows are kept, the newest (the file stays small after a flood)."""

AUDIT_MAX_OTHERS = 2000
"""Of those, at most this many rows about other senders' mentions (commands refused,
mentions dropped unrun): a flood never pushes out the newest
``AUDIT_MAX_ROWS - AUDIT_MAX_OTHERS`` admin rows."""

AUDIT_COLLAPSE_WINDOW = 3600.0
"""Another sender's mentions with the same command and result within this many seconds
of the row's first are one audit row with a count (one row per account and hour)."""

AUDIT_PRUNE_EVERY = 3600.0
"""Seconds between audit prunes when no other sender's mention was audited since."""

REPLIES_PER_ACCOUNT = 5
"""Replies one account can get per ``REPLIES_ACCOUNT_WINDOW`` (a token bucket)."""

REPLIES_ACCOUNT_WINDOW = 600.0
"""Seconds in which an account's ``REPLIES_PER_ACCOUNT`` replies refill."""

REPLIES_GLOBAL = 60
"""Replies the bot sends to everyone together per ``REPLIES_GLOBAL_WINDOW``."""

REPLIES_GLOBAL_WINDOW = 3600.0
"""Seconds in which the global ``REPLIES_GLOBAL`` replies refill."""

REPLY_LIMITER_ACCOUNTS = 10000
"""Accounts the reply limiter tracks at most (idle ones are forgotten first)."""

NOTIFICATION_POLICY = (("for_private_mentions", "accept"),)
"""Notification policy the bot sets at start-up, so that direct commands from accounts
it does not follow are not filtered (Mastodon 4.3+ filters them by default)."""

# --- Commands ---

COMMAND_INPUT_MAX = 5000
"""Characters of a mention's HTML (and of its content warning) read for a command;
the rest is cut off unread, so a huge status costs nothing."""

PUBLIC_COMMANDS = ("help", "status")
"""Commands anyone may send by mention (a subset of these; admins may send every command)."""

ADMIN_VISIBILITIES = ("direct",)
"""Visibilities in which an admin's admin-only command is accepted (direct: a private mention)."""

SILENCE_MAX = 7 * 86400.0
"""Longest silence in seconds an admin may set with ``silence <duration>``."""

MAINTENANCE_MAX = 7 * 86400.0
"""Longest maintenance window in seconds (``maintenance <start> <duration> <text>``)."""

MAINTENANCE_AHEAD_MAX = 90 * 86400.0
"""How far ahead in seconds a maintenance window may be announced."""

MAINTENANCE_START_GRACE = 300.0
"""Seconds a maintenance start may lie in the past: ``22:00`` sent at 22:03 means the
window that has just begun, not tomorrow's."""


CONFIRM_DELAY = 600.0
"""With ``incident_mode = "confirm"``: seconds a new incident's member notice waits for an
admin's ``confirm`` or ``discard`` before it is published anyway."""

# --- Reports ---

REPORT_SMALLER_BELOW = 0.5
"""Share of provisioned memory (0-1): a monthly peak below it means the server could be smaller."""

REPORT_TIGHT_ABOVE = 0.9
"""Share of provisioned memory (0-1): a monthly peak above it means the server is tight."""

REPORT_MIN_WATCHED = 0.5
"""Share of a report's period the bot must have watched for the report to be posted.

Half the period: a digest then speaks of at least 3.5 of its 7 days (a bot
installed mid-week posts its first digest the next Monday if it ran since
Thursday, else a week later), and what is reported as unknown never outweighs
what was seen. The posted report still says which part was not watched. A
period that ended before the bot's first start is never posted, whatever
history holds."""

REPORT_GAP_FACTOR = 1.5
"""Chart series: a step between points longer than this many typical steps is a gap
(the bot was not watching); the line breaks there instead of bridging it."""

CHART_WIDTH_PX = 1200
"""Width of the donor report's chart in pixels (portrait, readable at phone size)."""

CHART_HEIGHT_PX = 1350
"""Height of the donor report's chart in pixels."""

CHART_DPI = 150
"""Dots per inch of the chart: 1200 x 1350 px is 8 x 9 inches at 150 dpi."""

CHART_TIMEOUT = 60.0
"""Seconds the chart's child process may take before it is killed."""

# --- History ---

HISTORY_RAW_KEEP = 86400.0
"""Seconds raw samples (one per tick) are kept before they are rolled into 5-minute buckets."""

HISTORY_BUCKET = 300
"""Seconds of one downsampled bucket (min/mean/max of the raw samples in it)."""

HISTORY_FINE_KEEP = 40 * 86400.0
"""Seconds 5-minute buckets are kept before they are rolled into daily buckets (≥ 35 days)."""

HISTORY_DAILY_KEEP = 400 * 86400.0
"""Seconds daily buckets are kept; older ones are deleted."""

HOST_BYTES_MAX = float(1 << 50)
"""Largest memory size (1 PiB) a host sample or report figure may have; larger is garbage."""

HOST_HISTORY_BUCKET = 3600
"""Seconds of one downsampled bucket of each host's memory (coarser than ``HISTORY_BUCKET``:
with up to ``HOSTS_MAX`` hosts, 5-minute buckets for 40 days would be 770,000 rows)."""

HOST_HISTORY_NAMES_MAX = 4 * HOSTS_MAX
"""Most host names the history keeps at once (``HOSTS_MAX`` hosts, renamed a few times within
the daily buckets' 400 days); a new name past it records nothing until old ones expire."""

HISTORY_COMPACT_EVERY = 600.0
"""Seconds between two compactions of the sample history (``History.maybe_compact``)."""

DAILY_COUNTERS_MAX_DAYS = 5 * 366
"""Most days ``SidekiqReader.daily_counters`` reads (Sidekiq keeps its daily counters 5 years)."""

# --- Configuration bounds (bot/config.py rejects values outside them) ---
# Below a minimum the bot would busy-loop or hammer Redis or the instance;
# above a maximum a value is a typo, and huge values overflow time.sleep,
# socket timeouts and datetime arithmetic at run time.

INTERVAL_MIN = 0.5
"""Shortest ``[bot] interval`` in seconds; below it the loop spins (1e-6 s: 60 ticks a second)."""

INTERVAL_MAX = 3600.0
"""Longest ``[bot] interval`` in seconds: the health rules count in minutes, not hours."""

TIMEOUT_MIN = 0.1
"""Shortest ``socket_timeout`` and ``request_timeout`` in seconds a reply can arrive in."""

TIMEOUT_MAX = 300.0
"""Longest ``socket_timeout`` and ``request_timeout`` in seconds: a tick must not hang longer."""

PERIOD_MIN = 1.0
"""Shortest non-zero ``retry_after``, ``retry_max``, ``reminder_every``, ``confirm_delay``,
``backfill_every`` and ``stale_after`` in seconds."""

PERIOD_MAX = 366 * 86400.0
"""Longest of any duration in the configuration, in seconds (a year)."""

STATUS_EVERY_MIN = 3600.0
"""Shortest non-zero ``[posts] status_every`` in seconds: more often is spam for members."""

MAX_REMINDERS_MAX = 100
"""Most ``[posts] max_reminders`` per incident."""

REPLIES_MAX = 100000
"""Most ``replies_per_account`` and ``replies_per_hour`` (beyond it is the same as no limit)."""

MONTHLY_COST_MAX = 1e9
"""Largest ``[reports] monthly_cost``, in currency units."""


PAGE_PUBLISH_TIMEOUT = 60.0
"""Seconds ``[page] publish_command`` may run before it is killed."""

PAGE_PUBLISH_TIMEOUT_MAX = 3600.0
"""The longest ``[page] publish_timeout`` allowed."""

PAGE_REFRESH = 300.0
"""Seconds between rewrites of the status page when nothing it shows changed (only its
"last checked" time, today's cell and the availability move on)."""


# --- Fallback accounts on other servers ([[fallback]], bot/fallback.py) ---

FALLBACK_AFTER = 300.0
"""Seconds the instance must have been unreachable (its /health failing, or posts to it
failing) before a fallback account posts a notice."""

FALLBACK_AFTER_MAX = 86400.0
"""The longest ``[[fallback]] after`` allowed, in seconds (a day: later is no news)."""

FALLBACK_MAX = 4
"""Most ``[[fallback]]`` entries (each is an account on another server, called every tick)."""

FALLBACK_VISIBILITY = "public"
"""Visibility of fallback posts: members who cannot reach the instance find them anywhere."""

FALLBACK_UPDATE_GAP = 1800.0
"""Fewest seconds between two posts in a fallback thread while the outage lasts (the
incident's changes in between are folded into the next one)."""

FALLBACK_REMINDER_EVERY = 7200.0
"""Seconds after the last post in a fallback thread when a "still unreachable" follows,
with no change to tell."""

FALLBACK_MAX_FOLLOWUPS = 6
"""Most follow-ups in one fallback thread between its notice and its resolution."""

FALLBACK_VERIFY_RETRY = 600.0
"""Seconds before a fallback's token is checked again when its server did not answer."""

FALLBACK_CHECK_TIMEOUT = 10.0
"""Longest wait in seconds for a fallback server's answer to ``check`` and ``config-check``."""
PUBLISH_RETRY_BASE = 30.0
"""Seconds before the first retry of a failed ``[page] publish_command``; each further
failure doubles the pause, up to ``PUBLISH_RETRY_MAX``."""

PUBLISH_RETRY_MAX = 1800.0
"""Longest pause between retries of a failing ``[page] publish_command``, in seconds."""

PUBLISH_TELL_AFTER = 2
"""Failed runs in a row of ``[page] publish_command`` before the admins are told. One
failure that its retry 30 s later repairs (a network blip) is only logged: the page is
published every few minutes, so telling on every blip would be a message a day."""

PUBLISH_CLOSE_GRACE = 10.0
"""Seconds a stopping bot lets a running ``[page] publish_command`` finish before it is
killed (so ``statusbot run --once`` publishes the page it wrote)."""

PAGE_WRITE_RETRY = 60.0
"""Seconds between attempts to write the status page while ``[page] dir`` cannot be written
(each attempt renders the whole page, 90 days of history)."""
