"""The status page's edges: gather its data from the state file, write its files atomically.

``bot.page`` renders; this module reads what it renders from the store and
the history, and replaces the files in ``[page] dir`` so that a web server
never serves half a file: each is written to a temporary file in the same
directory, flushed to disk, renamed over the old one, and the directory is
flushed too. A file whose bytes did not change is not touched.

The seam for the tick loop is ``PageKeeper.update(live, past, now)``: it
returns True when a file changed (then the publish command should run), and
costs one comparison on a tick where nothing the page shows changed (see
``page.signature``). ``gather_live`` reads the cheap part every tick;
``gather_past`` (the 90 days, the resolved incidents) runs only when the
page is rendered.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from bot import defaults, page
from bot.compose import MEMBER_KINDS, Settings
from bot.config import Config
from bot.handlers import RuntimeMute, runtime_mutes
from bot.health import Mute
from bot.history import DAY, History, covered, finest
from bot.model import Incident, PostKind
from bot.store import CREATED_STATE, ItemState, Store, ThreadRow

PAGE_KINDS = MEMBER_KINDS - {PostKind.CATCHUP}
"""Posts of an incident or maintenance thread that the page shows (not admin messages)."""

_PAGE_KIND_NAMES = frozenset(kind.value for kind in PAGE_KINDS)


class PageWriteError(OSError):
    """A page file could not be written (the old one is left as it was)."""


# --- writing -------------------------------------------------------------------------------


def _target(directory: Path, name: str) -> Path:
    """Return where file ``name`` goes; refuse names that would leave ``directory``."""
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or any(p in ("..", ".", "") for p in parts):
        raise ValueError(f"not a page file name: {name!r:.80}")
    return directory.joinpath(*parts)


def write_files(directory: str | os.PathLike[str], files: Mapping[str, bytes]) -> list[str]:
    """Replace each file of ``files`` whose bytes differ on disk; return the names written.

    Atomic per file (temporary file in the same directory, fsync, rename,
    fsync of the directory). Raises ``PageWriteError`` naming the file when
    one cannot be written; the files before it are written, it and the ones
    after it keep their old content.
    """
    root = Path(directory)
    written: list[str] = []
    for name, content in files.items():
        path = _target(root, name)
        try:
            if path.is_file() and path.stat().st_size == len(content) \
                    and path.read_bytes() == content:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(path, content)
        except OSError as exc:
            raise PageWriteError(exc.errno, f"cannot write {path}: "
                                            f"{exc.strerror or exc}") from exc
        written.append(name)
    return written


def replace_file(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` atomically: temp file, fsync, rename, fsync the directory."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; the web server must read it
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (not possible everywhere, e.g. on Windows: then skipped)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(handle)
    finally:
        os.close(handle)


def page_dir_problem(directory: str) -> str | None:
    """Return why ``directory`` cannot hold the page, or None when it can (``config-check``)."""
    path = Path(directory)
    try:
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return (f"{path} is not a directory" if existing == path
                    else f"cannot create {path}: {existing} is not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing} is not writable by this user"
    except (OSError, ValueError) as exc:
        return f"cannot use {path}: {getattr(exc, 'strerror', None) or exc}"
    return None


# --- gathering -----------------------------------------------------------------------------


def page_posts(rows: Iterable[ThreadRow], prefix: str, instance_url: str,
               ) -> tuple[page.PagePost, ...]:
    """Return the member posts among ``rows`` of the thread ``prefix``, oldest first.

    Admin messages are left out, and so are updates dropped unsent because a
    later post of the same thread superseded them. A post links to the
    instance once it was published there.
    """
    posts = []
    for key, kind, text, created_at, state, status_id, folded_into in rows:
        if kind not in _PAGE_KIND_NAMES or not key.startswith(prefix):
            continue
        if state == ItemState.FOLDED.value and (folded_into or "").startswith(prefix):
            continue
        url = page.post_url(instance_url, status_id) if state == ItemState.SENT.value else None
        posts.append(page.PagePost(key, created_at, text, url))
    return tuple(sorted(posts, key=lambda p: (p.at, p.key)))


def thread(store: Store, prefix: str, instance_url: str) -> tuple[page.PagePost, ...]:
    """Return the member posts of the thread whose keys start with ``prefix``."""
    return page_posts(store.thread_rows(prefix), prefix, instance_url)


def maintenance_windows(store: Store, mutes: Sequence[Mute | RuntimeMute],
                        instance_url: str) -> tuple[page.Maintenance, ...]:
    """Return the maintenance windows among ``mutes`` (silences are not shown), with posts.

    Windows set by the ``maintenance`` command carry their thread's posts;
    ``[[maintenance]]`` windows of the config file have none.
    """
    windows = []
    for mute in mutes:
        if isinstance(mute, RuntimeMute):
            if mute.kind != "maintenance":
                continue
            windows.append(page.Maintenance(
                mute.id, mute.start, mute.end, mute.text, mute.components,
                thread(store, f"maint:{mute.id}:", instance_url)))
        elif mute.reason == "maintenance" or mute.reason.startswith("maintenance: "):
            windows.append(page.Maintenance(
                f"config-{int(mute.start)}-{int(mute.end)}", mute.start, mute.end,
                mute.reason.removeprefix("maintenance").removeprefix(": "), mute.components))
    return tuple(sorted(windows, key=lambda m: (m.start, m.id)))


def gather_live(store: Store, incident: Incident | None, mutes: Sequence[Mute | RuntimeMute],
                instance_url: str) -> page.Live:
    """Return what the page shows now: the open incident, its posts, maintenance windows."""
    posts = () if incident is None else thread(store, f"{incident.id}:", instance_url)
    return page.Live(incident, posts, maintenance_windows(store, mutes, instance_url))


def watched_days(history: History, windows: Sequence[tuple[float, float]],
                 ) -> tuple[page.WatchedDay, ...]:
    """Return how many seconds of each window the bot watched (one read of the history)."""
    if not windows:
        return ()
    start, end = windows[0][0], windows[-1][1]
    raw, fine, daily = (history.store.sample_rows(r, None, start, end)
                        for r in ("raw", "5m", "1d"))
    rows = finest(raw, fine, daily, bucket=history.bucket)
    times = [row[0] for row, _ in rows]
    days = []
    for low, high in windows:
        first = bisect.bisect_left(times, low - DAY)
        last = bisect.bisect_left(times, high)
        days.append(page.WatchedDay(low, high,
                                    covered(rows[first:last], low, high, history.interval)))
    return tuple(days)


def gather_past(store: Store, history: History, now: float, settings: Settings,
                instance_url: str, days: int = page.DAYS) -> page.Past:
    """Return the last ``days`` days as watched and the incidents resolved in them."""
    windows = page.day_windows(now, settings.timezone, days)
    if not windows:
        return page.Past()
    closed = history.incidents_between(windows[0][0], now)
    incidents = tuple(
        page.PastIncident(i.id, i.opened_at, i.resolved_at, i.peak, i.components,
                          thread(store, f"{i.id}:", instance_url))
        for i in closed[-page.SHOWN_PAST:])
    return page.Past(watched_days(history, windows), incidents)


def site_for(config: Config, settings: Settings, store: Store, now: float) -> page.Site:
    """Return the page's fixed part from the config, the composer's settings and the store."""
    return page.Site(settings, config.page.url, config.mastodon.api_base_url,
                     site_since(store, now))


def configured_mutes(config: Config, store: Store) -> list[Mute | RuntimeMute]:
    """Return the maintenance windows and silences of the config and of admins' commands."""
    return [*config.mutes, *runtime_mutes(store)]


def site_since(store: Store, fallback: float) -> float:
    """Return when the state file began (the page's components' ``created_at``)."""
    data = store.get_state(CREATED_STATE) or {}
    value = data.get("at")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return fallback


# --- the seam for the tick loop ------------------------------------------------------------


class PageKeeper:
    """Keep ``directory`` showing the page; the tick loop calls ``update`` every tick.

    The first call renders and writes (skipping files already up to date on
    disk); later calls render only when ``page.signature`` changed: what the
    page shows, or a ``refresh`` period passed.
    """

    def __init__(self, directory: str | os.PathLike[str], site: page.Site, *,
                 refresh: float = defaults.PAGE_REFRESH) -> None:
        self.directory = Path(directory)
        self.site = site
        self.refresh = refresh
        self._signature: tuple[object, ...] | None = None
        self.written: list[str] = []
        """The files the last render wrote (empty when all were up to date)."""

    def update(self, live: page.Live, past: Callable[[], page.Past], now: float) -> bool:
        """Render and write the page when due; return True when a file changed.

        ``past`` is called only when the page is rendered. Raises
        ``PageWriteError`` when a file cannot be written: nothing is marked
        done, so the next call tries again.
        """
        signature = page.signature(live, now, self.refresh)
        if signature == self._signature:
            return False
        data = page.PageData(self.site, live, past(), checked_at=now)
        self.written = write_files(self.directory, page.render(data, now))
        self._signature = signature
        return bool(self.written)
