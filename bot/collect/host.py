"""Read the host's memory, swap, load, CPU and disks, and memory by Mastodon role.

The only module that imports psutil. The per-role memory comes from one
``process_iter`` that asks only for the name, command line and memory of each
process.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psutil

from bot import defaults
from bot.model import DiskStats, HostStats, RoleMemory

ROLES = ("web", "sidekiq", "streaming", "postgres", "redis", "search", "other")
"""Mastodon roles memory is grouped by, in the order they are reported.

``web`` is Puma, ``streaming`` the Node.js streaming server, ``search``
Elasticsearch or OpenSearch; ``other`` is everything else on the host.
"""

PROCESS_ATTRS = ["name", "cmdline", "memory_info"]
"""The only attributes the process scan asks psutil for."""


def classify(name: str, cmdline: Sequence[str]) -> str:
    """Return the Mastodon role of a process from its name and command line.

    Sidekiq and Puma run as ``ruby``/``bundle`` but rename themselves
    (``sidekiq 6.5.12 mastodon [0 of 25 busy]``, ``puma 6.4.2 (tcp://…) [live]``),
    which shows in the command line; the streaming server is ``node`` running
    ``streaming``.
    """
    lowered_name = name.lower()
    head = cmdline[0].lower() if cmdline else ""
    words = " ".join(cmdline[:3]).lower()
    if lowered_name in {"postgres", "postmaster"} or head.startswith("postgres"):
        return "postgres"
    if lowered_name.startswith("redis-server") or head.startswith("redis-server"):
        return "redis"
    if head.startswith("sidekiq") or (lowered_name in {"ruby", "bundle"} and "sidekiq" in words):
        return "sidekiq"
    if head.startswith("puma") or (lowered_name in {"ruby", "bundle"} and "puma" in words):
        return "web"
    if lowered_name in {"node", "nodejs"} and "streaming" in " ".join(cmdline).lower():
        return "streaming"
    if lowered_name == "java" or head.endswith("java"):
        joined = " ".join(cmdline).lower()
        if "elasticsearch" in joined or "opensearch" in joined:
            return "search"
    return "other"


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """What the scan learned about one process (the input of ``group_by_role``)."""

    name: str
    cmdline: tuple[str, ...]
    rss_bytes: int


def group_by_role(samples: Iterable[ProcessSample]) -> tuple[RoleMemory, ...]:
    """Sum resident memory and count processes per role, every role listed."""
    rss = dict.fromkeys(ROLES, 0)
    count = dict.fromkeys(ROLES, 0)
    for sample in samples:
        role = classify(sample.name, sample.cmdline)
        rss[role] += sample.rss_bytes
        count[role] += 1
    return tuple(RoleMemory(role, count[role], rss[role]) for role in ROLES)


def scan_processes() -> tuple[list[ProcessSample], int]:
    """Return a sample of every process psutil can read, and how many it could not."""
    samples: list[ProcessSample] = []
    unreadable = 0
    for proc in psutil.process_iter(PROCESS_ATTRS, ad_value=None):
        info = proc.info
        memory = info.get("memory_info")
        if memory is None:
            unreadable += 1
            continue
        samples.append(
            ProcessSample(
                name=info.get("name") or "",
                cmdline=tuple(info.get("cmdline") or ()),
                rss_bytes=int(memory.rss),
            )
        )
    return samples, unreadable


def disk_usage(path: str) -> DiskStats:
    """Return the usage of the filesystem holding ``path``, or the error reading it."""
    try:
        usage = psutil.disk_usage(path)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc.strerror or exc}"
        return DiskStats(path, None, None, None, None, error)
    return DiskStats(path, usage.total, usage.used, usage.free, usage.percent)


class HostReader:
    """Take readings of this host.

    Construct once and reuse: the constructor primes psutil's CPU counter, so
    each reading's CPU percentage covers the time since the previous one.
    """

    def __init__(
        self,
        disk_paths: Sequence[str] = defaults.DISK_PATHS,
        *,
        cpu_sample_min: float = defaults.CPU_SAMPLE_MIN,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._disk_paths = tuple(disk_paths)
        self._cpu_sample_min = cpu_sample_min
        self._timer = timer
        self._sleep = sleep
        psutil.cpu_percent(interval=None)
        self._primed_at = timer()

    def read(self) -> HostStats:
        """Take one reading.

        A first reading right after construction waits until ``cpu_sample_min``
        seconds have passed since priming.
        """
        waited = self._timer() - self._primed_at
        if 0 <= waited < self._cpu_sample_min:
            self._sleep(self._cpu_sample_min - waited)
        cpu = psutil.cpu_percent(interval=None)
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        load = psutil.getloadavg()
        samples, unreadable = scan_processes()
        return HostStats(
            hostname=socket.gethostname(),
            memory_total_bytes=int(memory.total),
            memory_available_bytes=int(memory.available),
            memory_percent=float(memory.percent),
            swap_total_bytes=int(swap.total),
            swap_used_bytes=int(swap.used),
            swap_percent=float(swap.percent),
            load_1m=load[0],
            load_5m=load[1],
            load_15m=load[2],
            cpu_count=os.cpu_count(),
            cpu_percent=float(cpu),
            disks=tuple(disk_usage(path) for path in self._disk_paths),
            roles=group_by_role(samples),
            unreadable_processes=unreadable,
        )
