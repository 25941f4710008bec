"""The status page's part of a tick: keep ``[page] dir`` current and published.

Created on the first tick only when ``[page] dir`` is set (``app.start_page``),
so a bot without a page never imports the renderer. Each tick, after the
posts are committed and delivered (so the page links the posts just sent):

- ``gather_live`` reads the open incident's thread and the maintenance windows
  and ``PageKeeper.update`` compares them with the last render: on an
  unchanged tick that is all (no render, no write; ``bench/page_bench.py``).
  The page is rendered again when what it shows changed, and at most once per
  ``defaults.PAGE_REFRESH`` for "last checked", today's cell and availability.
- When a file changed, the publish command is asked to run (``bot/publish.py``,
  in the background); what it reports (failing, working again) becomes one
  admin message each, through the outbox.
- A directory that cannot be written is logged and told to the admins once,
  then tried again every ``defaults.PAGE_WRITE_RETRY`` seconds; posts are
  never affected, and nothing here raises into the tick.

Whether the admins were told that publishing fails is kept in the state file
(``PUBLISH_STATE``), so a restart neither tells them again nor forgets to say
that it works again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from bot import compose, defaults
from bot.compose import Settings
from bot.config import Config
from bot.handlers import RuntimeMute
from bot.health import Mute
from bot.history import History
from bot.incidents import describe_duration
from bot.model import Incident
from bot.pagefiles import (
    PageKeeper,
    PageWriteError,
    gather_live,
    gather_past,
    page_dir_problem,
    site_for,
)
from bot.publish import News, Publisher, Reason
from bot.store import Store
from bot.wording import TEXT_LIMIT, fill, neutral

log = logging.getLogger(__name__)

PUBLISH_STATE = "page-publish"
"""Named state: ``failing_since`` (epoch seconds) while the admins know publishing fails."""


class PageTick:
    """Keeps the status page written and published, one ``step`` per tick (see the module)."""

    def __init__(self, keeper: PageKeeper, store: Store, history: History, settings: Settings,
                 instance_url: str, publisher: Publisher | None = None) -> None:
        self.keeper = keeper
        self.store = store
        self.history = history
        self.settings = settings
        self.instance_url = instance_url
        self.publisher = publisher
        self.problem: str | None = None
        """Why the page cannot be written now (told to the admins once), or None."""
        self._retry_at = 0.0
        self._last_error: str | None = None
        if publisher is not None:
            publisher.told = self._failing_since() is not None

    def step(self, incident: Incident | None, mutes: Sequence[Mute | RuntimeMute],
             now: float) -> bool:
        """Write the page if what it shows changed; pass on publishing news. Never raises.

        Returns True when a file was written (and the publish command asked to run).
        """
        try:
            if self.publisher is not None:
                for news in self.publisher.news():
                    self._tell(news, now)
            return self._write(incident, mutes, now)
        except Exception as exc:  # a bug or a damaged state file: logged, the tick goes on
            signature = f"{type(exc).__name__}: {exc}"
            if signature != self._last_error:
                log.error("status page not updated (logged once while it repeats): %s",
                          signature, exc_info=exc)
                self._last_error = signature
            return False

    def _write(self, incident: Incident | None, mutes: Sequence[Mute | RuntimeMute],
               now: float) -> bool:
        if self.problem is not None and now < self._retry_at:
            return False
        live = gather_live(self.store, incident, mutes, self.instance_url)
        try:
            changed = self.keeper.update(
                live, lambda: gather_past(self.store, self.history, now, self.settings,
                                          self.instance_url), now)
        except PageWriteError as exc:
            self._unwritable(exc, now)
            return False
        if self.problem is not None:
            log.warning("the status page is written again in %s", self.keeper.directory)
            self.problem = None
        self._last_error = None
        if changed:
            log.debug("status page: wrote %s", ", ".join(self.keeper.written))
            if self.publisher is not None:
                self.publisher.changed()
        return changed

    def _unwritable(self, exc: PageWriteError, now: float) -> None:
        """Log and tell the admins once per problem; try again after a pause."""
        self._retry_at = now + defaults.PAGE_WRITE_RETRY
        problem = exc.strerror or str(exc)
        if self.problem is not None:
            log.debug("status page still not written: %s", problem)
            return
        self.problem = problem
        log.error("cannot write the status page (posts are not affected; tried again every "
                  "%.0f s): %s", defaults.PAGE_WRITE_RETRY, problem)
        text = fill(self.settings.wording.admin_page_unwritable, instance=self.settings.instance,
                    error=neutral(problem, TEXT_LIMIT))
        post = compose.admin_message(f"page-unwritable:{int(now)}", text, now, self.settings)
        if post is not None:
            self.store.enqueue([post])

    def _tell(self, news: News, now: float) -> None:
        """Turn publishing news into one admin message, kept with the state in one transaction."""
        words = self.settings.wording
        program = self.publisher.program if self.publisher is not None else "?"
        since = self._failing_since()
        if news.failure is not None:
            since = now if since is None else since
            text = fill(words.admin_publish_failing, instance=self.settings.instance,
                        program=program, count=str(news.count),
                        error=self._reason(news))
            key, state = f"page-publish-failing:{int(since)}", {"failing_since": since}
        else:
            since = now if since is None else since
            text = fill(words.admin_publish_recovered, instance=self.settings.instance,
                        program=program, duration=describe_duration(max(0.0, now - since)))
            key, state = f"page-publish-recovered:{int(since)}", {}
        post = compose.admin_message(key, text, now, self.settings)
        self.store.commit_tick([] if post is None else [post], {PUBLISH_STATE: state})

    def _reason(self, news: News) -> str:
        words = self.settings.wording
        failure = news.failure
        if failure is None:
            return ""
        if failure.reason is Reason.EXIT:
            return fill(words.admin_publish_exit, code=failure.detail)
        if failure.reason is Reason.SIGNAL:
            return fill(words.admin_publish_signal, signal=failure.detail)
        if failure.reason is Reason.TIMEOUT:
            return fill(words.admin_publish_timeout,
                        duration=describe_duration(float(failure.detail)))
        return fill(words.admin_publish_not_started, error=neutral(failure.detail, TEXT_LIMIT))

    def _failing_since(self) -> float | None:
        value = (self.store.get_state(PUBLISH_STATE) or {}).get("failing_since")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    def close(self, grace: float = defaults.PUBLISH_CLOSE_GRACE) -> None:
        """Stop the publisher: a run in flight gets ``grace`` seconds to finish. Never raises."""
        if self.publisher is None:
            return
        try:
            self.publisher.close(grace)
        except Exception as exc:
            log.error("stopping the status page publisher failed: %s", exc)


def start(config: Config, store: Store, history: History, settings: Settings, now: float, *,
          clock: Callable[[], float] = time.monotonic, background: bool = True) -> PageTick:
    """Return the page's tick part for ``config`` (``[page] dir`` must be set).

    A directory that cannot be used is a clear line in the log now; the
    first write then tells the admins. ``clock`` and ``background`` go to the
    ``Publisher`` (tests drive it by hand).
    """
    page = config.page
    problem = page_dir_problem(page.dir)
    if problem is not None:
        log.error("page.dir: %s; the status page is not written until this is fixed "
                  "(posts are not affected; statusbot config-check says the same)", problem)
    keeper = PageKeeper(page.dir, site_for(config, settings, store, now))
    publisher = (Publisher(page.publish_command, page.dir, timeout=page.publish_timeout,
                           clock=clock, background=background)
                 if page.publish_command else None)
    if publisher is not None:
        log.info("status page in %s, published by %s after each change", page.dir,
                 publisher.program)
    else:
        log.info("status page in %s (no publish_command)", page.dir)
    return PageTick(keeper, store, history, settings, config.mastodon.api_base_url, publisher)
