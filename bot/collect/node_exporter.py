"""Read other hosts from Prometheus' node_exporter (``[[hosts]] node_exporter``).

Every exporter is fetched in a thread of its own, all at once, each within
its own ``timeout``: connect, headers, body and parsing together. The caller
starts the fetches (``ExporterReader.start``), does its other work (Redis,
this host), then joins them (``ExporterBatch.join``): the join waits for no
host beyond that host's deadline, and cuts the connection of one that is
still talking (a server trickling bytes, or one that never answers), so a
tick is delayed by at most the largest timeout.

The text is parsed with ``prometheus_client``'s parser. What is read:
``node_memory_MemTotal_bytes`` and ``node_memory_MemAvailable_bytes``
(required), ``node_memory_SwapTotal_bytes`` and ``node_memory_SwapFree_bytes``
(absent: no swap), ``node_load1/5/15`` (absent: 0), the filesystems of
``node_filesystem_size_bytes``, ``_avail_bytes`` and ``_free_bytes`` (memory
and pseudo file systems left out), and the CPU count from the ``cpu`` labels
of ``node_cpu_seconds_total``. Anything else about the reply (a timeout, a
refused connection, an HTTP error, HTML, text that does not parse, a missing
or impossible value) makes the host's reading None with a one-line error;
nothing here raises.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from bot import defaults
from bot.config import HostEntry
from bot.model import DiskStats, HostReading, HostSource, HostStats

SKIPPED_FSTYPES = frozenset({
    "tmpfs", "devtmpfs", "ramfs", "overlay", "squashfs", "aufs", "proc", "sysfs", "cgroup",
    "cgroup2", "nsfs", "autofs", "devpts", "mqueue", "tracefs", "debugfs", "securityfs",
    "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "rpc_pipefs", "binfmt_misc",
    "efivarfs", "selinuxfs", "fuse.lxcfs", "iso9660", "nullfs", "devfs", "fdescfs",
})
"""File system types that hold no data worth watching (memory, pseudo, read-only images)."""

DISKS_MAX = 32
"""Most filesystems kept of one host: the first by mount point among the first
``4 * DISKS_MAX + 64`` mount points the reply names (the work stays bounded)."""

MOUNTPOINT_MAX = 256
"""Longest mount point kept, in characters (a longer one is cut)."""

CPUS_MAX = 65536
"""Most distinct ``cpu`` labels counted."""

VALUE_MAX = 2.0 ** 63
"""Largest byte count or load accepted (beyond it the exporter is not telling the truth)."""

ERROR_MAX = 300
"""Longest error text, in characters."""

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
"""The ``Accept`` header: Prometheus' text format (node_exporter's default answer)."""

_CHUNK = 65536

PREVIOUS_GRACE = 0.1
"""Seconds a tick's start waits, for all hosts together, for fetches cut at the last join
to end (they do at once, unless stuck in a name lookup); only when ticks follow closely."""

USED_PREFIXES = ("node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes",
                 "node_memory_Swap", "node_load", "node_filesystem_", "node_cpu_seconds_total")
"""Metric names (beginnings) the reading uses; the parser is given only their lines."""

CHECKED_LINES = 50
"""Lines of other metrics also given to the parser, so that text in another format is told."""


class ExporterError(Exception):
    """Why an exporter's reply is not a usable reading (one line, for admins)."""


def _one_line(text: object) -> str:
    """Return ``text`` on one line, without control characters, cut at ``ERROR_MAX``."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return flat if len(flat) <= ERROR_MAX else flat[:ERROR_MAX - 1] + "\N{HORIZONTAL ELLIPSIS}"


# --- parsing -------------------------------------------------------------------------------


@dataclass
class _Filesystem:
    fstype: str = ""
    size: float | None = None
    avail: float | None = None
    free: float | None = None
    device_error: bool = False


def _checked(name: str, value: float) -> float:
    """Return ``value`` when it is a finite number from 0 to ``VALUE_MAX``."""
    if not math.isfinite(value):
        raise ExporterError(f"has {name} = {value!r}, not a number")
    if value < 0 or value > VALUE_MAX:
        raise ExporterError(f"has {name} = {value:g}, out of range")
    return value


def used_lines(text: str) -> str:
    """Return the lines of ``text`` about the metrics used, plus the first other ones.

    A node_exporter answers hundreds of metrics (network, disks, the Go
    runtime) and the bot uses a few: the parser, which is what costs, then
    sees a fraction of the text. The first ``CHECKED_LINES`` other samples go
    with them, so that an answer that is not in Prometheus' format at all
    (HTML, JSON, anything) is still told as such by the parser. The format is
    line-based (a label value cannot hold a raw line break), so no sample is cut.
    """
    kept: list[str] = []
    others = 0
    for line in text.split("\n"):
        bare = line.lstrip()
        if bare.startswith("#"):
            words = bare.split(None, 3)
            if len(words) >= 3 and words[1] in ("HELP", "TYPE") \
                    and words[2].startswith(USED_PREFIXES):
                kept.append(line)
        elif bare.startswith(USED_PREFIXES):
            kept.append(line)
        elif bare and others < CHECKED_LINES:
            others += 1
            kept.append(line)
    return "\n".join(kept) + "\n"


def parse_metrics(text: str, name: str) -> HostStats:
    """Return the ``HostStats`` in node_exporter's ``text`` (host ``name``).

    Raises ``ExporterError`` naming what is wrong: text that is not in
    Prometheus' format, no memory metrics, a NaN, infinite or negative value.
    """
    singles: dict[str, float] = {}
    wanted = {
        "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes",
        "node_memory_SwapTotal_bytes", "node_memory_SwapFree_bytes",
        "node_load1", "node_load5", "node_load15",
    }
    filesystems: dict[str, _Filesystem] = {}
    cpus: set[str] = set()
    try:
        for family in text_string_to_metric_families(used_lines(text)):
            for sample in family.samples:
                metric = sample.name
                if metric in wanted:
                    singles.setdefault(metric, _checked(metric, float(sample.value)))
                elif metric.startswith("node_filesystem_"):
                    _filesystem_sample(filesystems, metric, sample.labels, sample.value)
                elif metric == "node_cpu_seconds_total" and len(cpus) < CPUS_MAX:
                    cpu = sample.labels.get("cpu")
                    if cpu is not None:
                        cpus.add(cpu)
    except ExporterError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ExporterError(f"answered text that is not Prometheus metrics "
                            f"({_one_line(exc)[:120]})") from None
    except RecursionError:
        raise ExporterError("answered text that is not Prometheus metrics (nested too deeply)"
                            ) from None
    for required in ("node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes"):
        if required not in singles:
            raise ExporterError(f"has no {required} (is it a node_exporter, with its meminfo "
                                f"collector on?)")
    total = singles["node_memory_MemTotal_bytes"]
    available = singles["node_memory_MemAvailable_bytes"]
    if total <= 0:
        raise ExporterError("has node_memory_MemTotal_bytes = 0")
    if available > total:
        raise ExporterError(f"has node_memory_MemAvailable_bytes ({available:.0f}) above "
                            f"node_memory_MemTotal_bytes ({total:.0f})")
    swap_total = singles.get("node_memory_SwapTotal_bytes", 0.0)
    swap_free = singles.get("node_memory_SwapFree_bytes", swap_total)
    if swap_free > swap_total:
        raise ExporterError(f"has node_memory_SwapFree_bytes ({swap_free:.0f}) above "
                            f"node_memory_SwapTotal_bytes ({swap_total:.0f})")
    swap_used = swap_total - swap_free
    return HostStats(
        hostname=name,
        memory_total_bytes=int(total),
        memory_available_bytes=int(available),
        memory_percent=round((total - available) / total * 100, 1),
        swap_total_bytes=int(swap_total),
        swap_used_bytes=int(swap_used),
        swap_percent=round(swap_used / swap_total * 100, 1) if swap_total > 0 else 0.0,
        load_1m=singles.get("node_load1", 0.0),
        load_5m=singles.get("node_load5", 0.0),
        load_15m=singles.get("node_load15", 0.0),
        cpu_count=len(cpus) or None,
        cpu_percent=None,
        disks=_disks(filesystems),
        roles=(),
    )


def _filesystem_sample(filesystems: dict[str, _Filesystem], metric: str,
                       labels: dict[str, str], value: float) -> None:
    """Note one ``node_filesystem_*`` sample under its mount point."""
    part = metric.removeprefix("node_filesystem_")
    if part not in {"size_bytes", "avail_bytes", "free_bytes", "device_error"}:
        return
    mountpoint = labels.get("mountpoint")
    if not mountpoint:
        return
    fs = filesystems.get(mountpoint)
    if fs is None:
        if len(filesystems) >= 4 * DISKS_MAX + 64:  # bounded work on a hostile reply
            return
        fs = filesystems[mountpoint] = _Filesystem(fstype=labels.get("fstype", ""))
    if part == "device_error":
        fs.device_error = fs.device_error or value != 0
        return
    checked = _checked(f"{metric}{{mountpoint={mountpoint[:60]!r}}}", float(value))
    if part == "size_bytes":
        fs.size = checked if fs.size is None else fs.size
    elif part == "avail_bytes":
        fs.avail = checked if fs.avail is None else fs.avail
    else:
        fs.free = checked if fs.free is None else fs.free


def _disks(filesystems: dict[str, _Filesystem]) -> tuple[DiskStats, ...]:
    """Return the filesystems worth watching as ``DiskStats`` (as psutil counts them)."""
    disks: list[DiskStats] = []
    for mountpoint in sorted(filesystems):
        fs = filesystems[mountpoint]
        if fs.fstype in SKIPPED_FSTYPES:
            continue
        path = mountpoint if len(mountpoint) <= MOUNTPOINT_MAX else (
            mountpoint[:MOUNTPOINT_MAX - 1] + "\N{HORIZONTAL ELLIPSIS}")
        if fs.device_error or fs.size is None or fs.avail is None:
            disks.append(DiskStats(path, None, None, None, None,
                                   "node_exporter could not read this filesystem"))
        elif fs.size > 0:
            free = fs.free if fs.free is not None and fs.free <= fs.size else fs.avail
            used = max(0.0, fs.size - free)
            avail = min(fs.avail, fs.size)
            percent = round(used / (used + avail) * 100, 1) if used + avail > 0 else 0.0
            disks.append(DiskStats(path, int(fs.size), int(used), int(avail), percent))
        if len(disks) >= DISKS_MAX:
            break
    return tuple(disks)


# --- fetching ------------------------------------------------------------------------------


def _display(url: str) -> str:
    """Return the URL as errors show it (no query: it may be long)."""
    return url.split("?", 1)[0][:120]


class _Fetch:
    """One exporter's fetch in its own thread; ``abort`` cuts its connection."""

    def __init__(self, entry: HostEntry, started: float,
                 timer: Callable[[], float]) -> None:
        self.entry = entry
        self.deadline = started + entry.timeout
        self._timer = timer
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._aborted = False
        self.result: HostReading | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the fetch in a thread of its own (a daemon: it never holds up an exit)."""
        self.thread = threading.Thread(target=self._run, name=f"exporter-{self.entry.name}",
                                       daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        """Whether the fetch's thread is still at work."""
        return self.thread is not None and self.thread.is_alive()

    def _reading(self, stats: HostStats | None, error: str | None) -> HostReading:
        return HostReading(name=self.entry.name, source=HostSource.NODE_EXPORTER, stats=stats,
                           error=error, role=self.entry.role,
                           member_visible=self.entry.member_visible)

    def failed(self, error: str) -> HostReading:
        """Return the reading of a host that could not be read: ``error`` after its URL."""
        return self._reading(None, _one_line(f"{_display(self.entry.node_exporter)} {error}"))

    def timed_out(self) -> HostReading:
        """Return the reading of a host that did not answer in time."""
        return self._reading(None, f"{_display(self.entry.node_exporter)} did not answer "
                                   f"within {self.entry.timeout:g} s")

    def _run(self) -> None:
        try:
            stats = parse_metrics(self._body(), self.entry.name)
            self.result = self._reading(stats, None)
        except ExporterError as exc:
            self.result = self.failed(str(exc))
        except _Timeout:
            self.result = self.timed_out()
        except Exception as exc:  # never let a thread die with the reading untold
            self.result = self.failed(f"failed: {type(exc).__name__}: {exc}")

    def _remaining(self) -> float:
        left = self.deadline - self._timer()
        if left <= 0 or self._aborted:
            raise _Timeout
        return left

    def _body(self) -> str:
        url = self.entry.node_exporter
        parts = urlsplit(url)
        host = parts.hostname or ""
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, parts.port, timeout=self._remaining(),
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=self._remaining())
        with self._lock:
            if self._aborted:
                raise _Timeout
            self._conn = conn
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            try:
                conn.connect()
                self._set_timeout(conn)
                conn.putrequest("GET", path, skip_accept_encoding=True)
                conn.putheader("Accept", ACCEPT)
                conn.putheader("Accept-Encoding", "identity")
                conn.putheader("User-Agent", "statusbot")
                conn.endheaders()
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                self._remaining()  # a cut connection is a timeout
                raise ExporterError(f"cannot be read: {_network_error(exc)}") from None
            if response.status != 200:
                raise ExporterError(f"answered HTTP {response.status} "
                                    f"{_one_line(response.reason)[:60]}".rstrip())
            kind = (response.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
            if kind and kind != "text/plain":
                raise ExporterError(f"answered {_one_line(kind)[:60]}, not Prometheus metrics "
                                    f"(text/plain)")
            body = self._read(conn, response)
        finally:
            with self._lock:
                self._conn = None
            conn.close()
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise ExporterError("answered text that is not UTF-8") from None

    def _set_timeout(self, conn: http.client.HTTPConnection) -> None:
        if conn.sock is not None:
            conn.sock.settimeout(self._remaining())

    def _read(self, conn: http.client.HTTPConnection,
              response: http.client.HTTPResponse) -> bytes:
        """Read the body in pieces, each within the time left, at most ``EXPORTER_BODY_MAX``."""
        limit = defaults.EXPORTER_BODY_MAX
        length = response.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise ExporterError(f"answered {int(length)} bytes, more than the "
                                f"{limit // 1048576} MiB read")
        chunks: list[bytes] = []
        size = 0
        while True:
            self._set_timeout(conn)
            try:
                chunk = response.read1(_CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                self._remaining()
                raise ExporterError(f"broke off its answer: {_network_error(exc)}") from None
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise ExporterError(f"answered more than the {limit // 1048576} MiB read")
            chunks.append(chunk)

    def abort(self) -> None:
        """Cut the connection (the thread then ends at once); its result is not used."""
        with self._lock:
            self._aborted = True
            conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)


class _Timeout(Exception):
    """The fetch's own deadline passed."""


def _network_error(exc: BaseException) -> str:
    """Say what went wrong on the network in a few words."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({_one_line(exc.strerror or exc)[:80]})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {_one_line(exc.reason or exc)[:120]}"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return _one_line(text)[:120]


class ExporterBatch:
    """The fetches of one tick, started; ``join`` collects their readings."""

    def __init__(self, fetches: Sequence[_Fetch], timer: Callable[[], float]) -> None:
        self._fetches = fetches
        self._timer = timer

    def join(self) -> list[HostReading]:
        """Wait for every fetch up to its own deadline; return the readings, sorted by name.

        A fetch still running at its deadline is cut off and reported as not
        answering in time.
        """
        readings: list[HostReading] = []
        for fetch in sorted(self._fetches, key=lambda f: f.deadline):
            if fetch.thread is not None:
                fetch.thread.join(max(0.0, fetch.deadline - self._timer()))
            result = fetch.result
            if fetch.running or result is None:
                fetch.abort()
                result = fetch.timed_out()
            readings.append(result)
        return sorted(readings, key=lambda r: r.name)


class ExporterReader:
    """Read the ``[[hosts]]`` entries that name a node_exporter, concurrently.

    A host whose previous fetch is somehow still running (a name that takes
    long to resolve) is not fetched twice: it is reported as not answering
    until that thread is done. So at most one thread per host ever runs.
    """

    def __init__(self, entries: Iterable[HostEntry], *,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.entries = tuple(e for e in entries if e.node_exporter)
        self._timer = timer
        self._running: dict[str, _Fetch] = {}

    def start(self) -> ExporterBatch:
        """Start one fetch per exporter, all at once; join the batch for the readings."""
        started = self._timer()
        fetches: list[_Fetch] = []
        for entry in self.entries:
            previous = self._running.get(entry.name)
            if previous is not None and previous.running and previous.thread is not None:
                # cut at the last join, it ends at once unless stuck where no cut reaches
                previous.thread.join(max(0.0, started + PREVIOUS_GRACE - self._timer()))
            fetch = _Fetch(entry, started, self._timer)
            if previous is not None and previous.running:
                fetch.result = fetch.timed_out()  # no second thread for this host
            else:
                self._running[entry.name] = fetch
                try:
                    fetch.start()
                except RuntimeError as exc:  # no thread to be had: this host waits a tick
                    fetch.result = fetch.failed(f"not read: {exc}")
            fetches.append(fetch)
        return ExporterBatch(fetches, self._timer)

    def read(self) -> list[HostReading]:
        """Fetch every exporter and wait for them (``start().join()``)."""
        return self.start().join()
