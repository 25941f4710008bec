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

STATE_DIR = "statusbot-state"
"""Where the SQLite state file lives; relative paths are relative to the working directory."""

REQUEST_TIMEOUT = 15.0
"""Seconds to wait for the Mastodon API before a request counts as failed (and is retried)."""

ACCESS_TOKEN_ENV = "STATUSBOT_ACCESS_TOKEN"
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
