"""Reading hosts from node_exporter: parsing, and fetching from loopback servers that misbehave."""

from __future__ import annotations

import contextlib
import http.client
import math
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from bot import defaults
from bot.collect import Collector, node_exporter
from bot.collect.node_exporter import ExporterError, ExporterReader, parse_metrics, used_lines
from bot.config import Config, HostEntry, RedisConfig
from bot.demo import free_port
from bot.model import DiskStats, HostReading, HostSource

FIXTURE = Path(__file__).parent / "fixtures" / "node_exporter-1.5.0.txt"
REAL = FIXTURE.read_text()
"""Recorded from Debian's prometheus-node-exporter 1.5.0 (2 CPUs, no swap, one ext4 disk)."""

GIB = 1024 ** 3

MINIMAL = """\
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 8.589934592e+09
node_memory_MemAvailable_bytes 2.147483648e+09
node_memory_SwapTotal_bytes 1.073741824e+09
node_memory_SwapFree_bytes 8.05306368e+08
node_load1 0.5
node_load5 0.25
node_load15 0.125
"""

FILESYSTEMS = """\
node_filesystem_size_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 1e+11
node_filesystem_free_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 3e+10
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 2.5e+10
node_filesystem_size_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 1e+09
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 1e+09
node_filesystem_size_bytes{device="overlay",fstype="overlay",mountpoint="/var/lib/docker/x"} 1e9
node_filesystem_avail_bytes{device="overlay",fstype="overlay",mountpoint="/var/lib/docker/x"} 1e9
node_filesystem_size_bytes{device="/dev/loop0",fstype="squashfs",mountpoint="/snap/core/1"} 1e8
node_filesystem_avail_bytes{device="/dev/loop0",fstype="squashfs",mountpoint="/snap/core/1"} 0
node_filesystem_device_error{device="/dev/sdb",fstype="xfs",mountpoint="/srv/media"} 1
node_cpu_seconds_total{cpu="0",mode="idle"} 10
node_cpu_seconds_total{cpu="0",mode="user"} 10
node_cpu_seconds_total{cpu="1",mode="idle"} 10
node_cpu_seconds_total{cpu="3",mode="idle"} 10
"""


# --- parsing -------------------------------------------------------------------------------


def test_real_node_exporter_output() -> None:
    """The recorded real output gives memory, swap, load, CPUs and the ext4 root."""
    stats = parse_metrics(REAL, "db1")
    assert stats.hostname == "db1"
    assert (stats.memory_total_bytes, stats.memory_available_bytes) == (25275990016, 24291418112)
    assert stats.memory_percent == 3.9
    assert (stats.swap_total_bytes, stats.swap_used_bytes, stats.swap_percent) == (0, 0, 0.0)
    assert (stats.load_1m, stats.load_5m, stats.load_15m) == (4.5, 1.92, 1.07)
    assert stats.cpu_count == 2
    assert stats.cpu_percent is None
    assert stats.disks == (DiskStats("/", 270553174016, 270553174016 - 242295607296,
                                     80686727168, 25.9),)
    assert stats.roles == ()


def test_the_parser_sees_every_line_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Giving the parser only the used lines changes nothing in the reading."""
    filtered = parse_metrics(REAL + FILESYSTEMS, "h")
    monkeypatch.setattr(node_exporter, "used_lines", lambda text: text)
    assert parse_metrics(REAL + FILESYSTEMS, "h") == filtered
    assert len(used_lines(REAL)) < len(REAL) / 5


def test_minimal_and_filesystems() -> None:
    """Swap and load are read; pseudo file systems are skipped, an unreadable one is said."""
    stats = parse_metrics(MINIMAL + FILESYSTEMS, "web1")
    assert (stats.memory_total_bytes, stats.memory_available_bytes) == (8 * GIB, 2 * GIB)
    assert stats.memory_percent == 75.0
    assert (stats.swap_total_bytes, stats.swap_used_bytes, stats.swap_percent) == (
        GIB, 256 * 1024 ** 2, 25.0)
    assert (stats.load_1m, stats.load_5m, stats.load_15m) == (0.5, 0.25, 0.125)
    assert stats.cpu_count == 3
    assert stats.disks == (
        DiskStats("/", 10 ** 11, 7 * 10 ** 10, 25 * 10 ** 9, 73.7),
        DiskStats("/srv/media", None, None, None, None,
                  "node_exporter could not read this filesystem"),
    )


def test_without_swap_load_or_cpus() -> None:
    """Only memory is required: no swap metric is no swap, no load is 0, no CPU label is None."""
    stats = parse_metrics("node_memory_MemTotal_bytes 100\nnode_memory_MemAvailable_bytes 40\n",
                          "h")
    assert (stats.swap_total_bytes, stats.swap_percent, stats.load_1m, stats.cpu_count) == (
        0, 0.0, 0.0, None)
    assert stats.memory_percent == 60.0


def test_odd_labels_are_data() -> None:
    """Escaped quotes, braces, '@someone' and many labels in a mount point stay plain data."""
    labels = ",".join(f'l{i}="{"{" * 20}{i}{"}" * 20}"' for i in range(200))
    text = MINIMAL + (
        f'node_filesystem_size_bytes{{{labels},fstype="ext4",'
        f'mountpoint="/srv/@someone \\"x\\" {{a}}"}} 100\n'
        f'node_filesystem_avail_bytes{{fstype="ext4",'
        f'mountpoint="/srv/@someone \\"x\\" {{a}}"}} 50\n'
        'node_filesystem_size_bytes{fstype="ext4",mountpoint="/srv/a\\nb"} 100\n'
        'node_filesystem_avail_bytes{fstype="ext4",mountpoint="/srv/a\\nb"} 100\n'
    )
    stats = parse_metrics(text, "@someone")
    assert stats.hostname == "@someone"
    assert [d.path for d in stats.disks] == ['/srv/@someone "x" {a}', "/srv/a\nb"]
    assert stats.disks[0].percent == 50.0


def test_many_filesystems_are_capped() -> None:
    """A reply listing thousands of mount points keeps the first 32 by name."""
    lines = "".join(
        f'node_filesystem_size_bytes{{fstype="ext4",mountpoint="/m{i:05d}"}} 100\n'
        f'node_filesystem_avail_bytes{{fstype="ext4",mountpoint="/m{i:05d}"}} 50\n'
        for i in range(5000))
    disks = parse_metrics(MINIMAL + lines, "h").disks
    assert len(disks) == 32
    assert disks[0].path == "/m00000"


@pytest.mark.parametrize(("text", "error"), [
    pytest.param("<html><body>Not here</body></html>\n",
                 "answered text that is not Prometheus metrics (invalid metric name:<html><body>"
                 "Not here</body></html>)", id="html"),
    pytest.param("hello world\n", "answered text that is not Prometheus metrics (could not "
                                  "convert string to float: 'world')", id="words"),
    pytest.param("\x00\x1b[31m\n", "answered text that is not Prometheus metrics "
                                   "(invalid metric name: [31m)", id="control"),
    pytest.param("", "has no node_memory_MemTotal_bytes (is it a node_exporter, with its meminfo "
                     "collector on?)", id="empty"),
    pytest.param("up 1\nnode_memory_MemTotal_bytes 100\n",
                 "has no node_memory_MemAvailable_bytes (is it a node_exporter, with its meminfo "
                 "collector on?)", id="no-available"),
    pytest.param("node_memory_MemTotal_bytes 100\nnode_memory_MemAvailable_bytes NaN\n",
                 "has node_memory_MemAvailable_bytes = nan, not a number", id="nan"),
    pytest.param("node_memory_MemTotal_bytes +Inf\nnode_memory_MemAvailable_bytes 1\n",
                 "has node_memory_MemTotal_bytes = inf, not a number", id="inf"),
    pytest.param(MINIMAL.replace("node_load5 0.25", "node_load5 -1"),
                 "has node_load5 = -1, out of range", id="negative-load"),
    pytest.param("node_memory_MemTotal_bytes 1e300\nnode_memory_MemAvailable_bytes 1\n",
                 "has node_memory_MemTotal_bytes = 1e+300, out of range", id="huge"),
    pytest.param("node_memory_MemTotal_bytes 0\nnode_memory_MemAvailable_bytes 0\n",
                 "has node_memory_MemTotal_bytes = 0", id="zero-total"),
    pytest.param("node_memory_MemTotal_bytes 10\nnode_memory_MemAvailable_bytes 20\n",
                 "has node_memory_MemAvailable_bytes (20) above node_memory_MemTotal_bytes (10)",
                 id="available-above-total"),
    pytest.param(MINIMAL.replace("SwapFree_bytes 8.05306368e+08", "SwapFree_bytes 2e9"),
                 "has node_memory_SwapFree_bytes (2000000000) above node_memory_SwapTotal_bytes "
                 "(1073741824)", id="swap-free-above-total"),
    pytest.param(MINIMAL + 'node_filesystem_size_bytes{fstype="ext4",mountpoint="/"} NaN\n',
                 "has node_filesystem_size_bytes{mountpoint='/'} = nan, not a number",
                 id="nan-disk"),
])
def test_bad_metrics(text: str, error: str) -> None:
    """Text that is not a usable node_exporter reading is a one-line error, never a crash."""
    with pytest.raises(ExporterError) as caught:
        parse_metrics(text, "h")
    assert str(caught.value) == error


# --- fetching from loopback servers ----------------------------------------------------------

Handler = Callable[[BaseHTTPRequestHandler, threading.Event], None]


def send(handler: BaseHTTPRequestHandler, body: bytes, kind: str = "text/plain; version=0.0.4",
         status: int = 200, length: bool = True) -> None:
    handler.send_response(status)
    if kind:
        handler.send_header("Content-Type", kind)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def trickle(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.end_headers()
    for line in (MINIMAL * 100000).encode().splitlines(keepends=True):
        if stop.wait(0.02):
            return
        handler.wfile.write(line)
        handler.wfile.flush()


def trickle_headers(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    for index in range(100000):
        if stop.wait(0.02):
            return
        handler.wfile.write(f"X-Slow-{index}: 1\r\n".encode())
        handler.wfile.flush()


def huge(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.end_headers()  # no length: the body ends when the connection closes
    line = b"# " + b"x" * 1022 + b"\n"
    for _ in range(9 * 1024 + 1):
        if stop.is_set():
            return
        handler.wfile.write(line)


def declared_huge(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(9 * 1024 * 1024))
    handler.end_headers()
    handler.wfile.write(b"# x\n")


ROUTES: dict[str, Handler] = {
    "/metrics": lambda h, s: send(h, REAL.encode()),
    "/no-type": lambda h, s: send(h, MINIMAL.encode(), kind=""),
    "/html": lambda h, s: send(h, b"<html><body>Welcome to nginx!</body></html>",
                               kind="text/html; charset=utf-8"),
    "/html-as-text": lambda h, s: send(h, b"<!DOCTYPE html><html></html>", kind="text/plain"),
    "/json": lambda h, s: send(h, b'{"status": "up"}', kind="application/json"),
    "/garbage": lambda h, s: send(h, bytes(range(256)) * 4),
    "/latin1": lambda h, s: send(h, b"# caf\xe9\n" + MINIMAL.encode()),
    "/500": lambda h, s: send(h, b"oops", status=500),
    "/404": lambda h, s: send(h, b"", status=404),
    "/nan": lambda h, s: send(h, MINIMAL.replace("0.5", "NaN").encode()),
    "/declared-huge": declared_huge,
    "/huge": huge,
    "/trickle": trickle,
    "/trickle-headers": trickle_headers,
    "/hang": lambda h, s: (s.wait(60), None)[1],
}


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print the resets the client is meant to cause."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class Exporters:
    """A loopback HTTP server standing in for node_exporters of every kind."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.requests: list[str] = []
        outer = self

        class Handle(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                with contextlib.suppress(OSError):  # the client cuts slow ones, as it should
                    ROUTES[self.path.split("?")[0]](self, outer.stop)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handle)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporters() -> Iterator[Exporters]:
    server = Exporters()
    yield server
    server.close()


def entry(url: str, name: str = "h", timeout: float = 10.0) -> HostEntry:
    return HostEntry(name=name, node_exporter=url, timeout=timeout, role="db",
                     member_visible=True)


def read_one(url: str, timeout: float = 10.0) -> HostReading:
    readings = ExporterReader([entry(url, timeout=timeout)]).read()
    assert len(readings) == 1
    return readings[0]


def test_good_exporter(exporters: Exporters) -> None:
    """A node_exporter's /metrics becomes the host's reading, with the entry's role."""
    reading = read_one(exporters.url("/metrics"))
    assert reading == HostReading(name="h", source=HostSource.NODE_EXPORTER,
                                  stats=parse_metrics(REAL, "h"), role="db", member_visible=True)
    assert reading.stats is not None and reading.stats.cpu_count == 2


def test_no_content_type_and_a_query(exporters: Exporters) -> None:
    """A reply without Content-Type is tried as metrics; the URL's query is sent."""
    reading = read_one(exporters.url("/no-type?collect[]=meminfo"))
    assert reading.error is None and reading.stats is not None
    assert exporters.requests == ["/no-type?collect[]=meminfo"]


@pytest.mark.parametrize(("path", "error"), [
    pytest.param("/html", "answered text/html, not Prometheus metrics (text/plain)", id="html"),
    pytest.param("/json", "answered application/json, not Prometheus metrics (text/plain)",
                 id="json"),
    pytest.param("/html-as-text", "answered text that is not Prometheus metrics (invalid metric "
                                  "name:<!DOCTYPE html><html></html>)", id="html-as-text"),
    pytest.param("/latin1", "answered text that is not UTF-8", id="not-utf8"),
    pytest.param("/500", "answered HTTP 500 Internal Server Error", id="500"),
    pytest.param("/404", "answered HTTP 404 Not Found", id="404"),
    pytest.param("/nan", "has node_load1 = nan, not a number", id="nan"),
    pytest.param("/declared-huge", "answered 9437184 bytes, more than the 8 MiB read",
                 id="declared-huge"),
    pytest.param("/huge", "answered more than the 8 MiB read", id="huge"),
])
def test_bad_exporters(exporters: Exporters, path: str, error: str) -> None:
    """A reply that is no reading is a clear per-host error after the URL."""
    url = exporters.url(path)
    reading = read_one(url)
    assert (reading.stats, reading.error) == (None, f"{url} {error}")


def test_garbage(exporters: Exporters) -> None:
    """Binary garbage is an error on one line, without control characters."""
    reading = read_one(exporters.url("/garbage"))
    assert reading.stats is None and reading.error is not None
    assert reading.error.startswith(f"{exporters.url('/garbage')} answered text that is not")
    assert reading.error.isprintable() and len(reading.error) <= 300


@pytest.mark.parametrize("path", ["/hang", "/trickle", "/trickle-headers"])
def test_slow_exporters_are_cut_at_the_timeout(exporters: Exporters, path: str) -> None:
    """An exporter that never answers, or trickles headers or body, is cut at its timeout."""
    url = exporters.url(path)
    reading = read_one(url, timeout=0.5)
    assert (reading.stats, reading.error) == (None, f"{url} did not answer within 0.5 s")


def test_refused() -> None:
    """Nobody listening is a refused connection."""
    url = f"http://127.0.0.1:{free_port()}/metrics"
    reading = read_one(url)
    assert (reading.stats, reading.error) == (None, f"{url} cannot be read: connection refused")


def test_hosts_are_read_together(exporters: Exporters) -> None:
    """One hanging exporter among good and bad ones: each gets its own reading, sorted by name."""
    reader = ExporterReader([
        entry(exporters.url("/hang"), "c-hang", timeout=0.5),
        entry(exporters.url("/metrics"), "a-good"),
        entry(exporters.url("/html"), "b-html"),
        HostEntry(name="agent-only"),  # no exporter: read through Redis by the agents' code
    ])
    readings = reader.read()
    assert [(r.name, r.stats is not None) for r in readings] == [
        ("a-good", True), ("b-html", False), ("c-hang", False)]
    assert readings[2].error == f"{exporters.url('/hang')} did not answer within 0.5 s"


def test_a_host_still_busy_is_not_read_twice(exporters: Exporters,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch stuck where no cut reaches it (a slow name lookup) keeps its host's only thread."""
    release = threading.Event()
    calls: list[str] = []

    def stuck_connect(self: http.client.HTTPConnection) -> None:
        calls.append(self.host)
        release.wait(30)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(http.client.HTTPConnection, "connect", stuck_connect)
    reader = ExporterReader([entry(exporters.url("/metrics"), timeout=0.2)])
    first = reader.read()
    second = reader.read()
    release.set()
    assert calls == ["127.0.0.1"]
    assert first[0].error == second[0].error == (
        f"{exporters.url('/metrics')} did not answer within 0.2 s")


def test_collector_reads_exporters_beside_redis(exporters: Exporters) -> None:
    """Collector.collect puts the exporters' readings in Snapshot.hosts, Redis down or not."""
    config = Config(
        redis=RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0", socket_timeout=2.0),
        hosts=(entry(exporters.url("/metrics"), "db1"), entry(exporters.url("/hang"), "cache",
                                                              timeout=0.3),
               HostEntry(name="agent-only")),
    )
    client = redis.Redis.from_url(config.redis.url, socket_timeout=2, socket_connect_timeout=2)
    collector = Collector(config, client=client, clock=lambda: 1000.0)
    try:
        snapshot = collector.collect()
    finally:
        collector.close()
    assert snapshot.collected_at == 1000.0
    assert not snapshot.redis.reachable
    assert [(h.name, h.source, h.error is None) for h in snapshot.hosts] == [
        ("cache", HostSource.NODE_EXPORTER, False), ("db1", HostSource.NODE_EXPORTER, True)]
    stats = snapshot.hosts[1].stats
    assert stats is not None and math.isclose(stats.memory_total_bytes, 25275990016)
    assert snapshot.to_dict()["hosts"][1]["source"] == "node_exporter"


def test_default_timeout_is_in_bounds() -> None:
    """The default per-host timeout lies within what the config accepts."""
    assert defaults.HOST_TIMEOUT_MIN <= defaults.HOST_TIMEOUT <= defaults.HOST_TIMEOUT_MAX
