"""An agent's host reading on the wire: compact JSON written by the agent, read by the bot.

``encode`` turns a ``HostStats`` (with the host's name, the agent's interval,
when it was taken and how long that took) into one compact JSON text;
``decode`` reads it back with strict validation and never raises: anything
that is not exactly what ``encode`` writes (text over ``WIRE_MAX`` bytes, JSON
that does not parse or is nested too deeply, another schema version, a
missing or extra field, a wrong type, a non-finite, negative or impossible
number, a name that is not the key's, text that could mention, tag or link
someone) gives a one-line problem instead of a reading.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.config import HOST_NAME
from bot.model import HOST_SCHEMA_VERSION, DiskStats, HostStats, RoleMemory

WIRE_MAX = 65_536
"""Bytes: the longest reading accepted (a real one is under 2 KB)."""

BYTES_MAX = 2**63
"""The largest byte count accepted."""

LOAD_MAX = 1e6
"""The largest load average accepted."""

CPUS_MAX = 65_536
"""The largest CPU count accepted."""

INTERVAL_MAX = 86_400.0
"""Seconds: the longest agent interval accepted."""

DISKS_MAX = 32
"""Most disks in one reading."""

ROLES_MAX = 16
"""Most memory roles in one reading."""

TEXT_MAX = 256
"""Longest text field (a path, an error), in characters."""

PROBLEM_MAX = 200
"""Longest problem text returned, in characters."""

FIELDS = frozenset({"v", "name", "at", "interval", "took_ms", "host"})
"""The top-level fields of a reading, all required."""

HOST_FIELDS = frozenset({
    "hostname", "memory_total_bytes", "memory_available_bytes", "memory_percent",
    "swap_total_bytes", "swap_used_bytes", "swap_percent", "load_1m", "load_5m", "load_15m",
    "cpu_count", "cpu_percent", "disks", "roles", "unreadable_processes"})
"""The fields of ``host`` (``HostStats``' own), all required."""

_HOSTNAME = re.compile(r"[A-Za-z0-9._-]{1,253}\Z")
_ROLE = re.compile(r"[a-z]{1,32}\Z")
_UNSAFE = re.compile(r"[@#]|://")


@dataclass(frozen=True, slots=True)
class WireReading:
    """One decoded agent reading.

    ``at`` is when the agent took it (its own clock, epoch seconds),
    ``interval`` the agent's interval in seconds (its key expires after
    ``HOST_EXPIRY_INTERVALS`` of them), ``took_ms`` how long the reading took.
    """

    name: str
    stats: HostStats
    at: float
    interval: float
    took_ms: float
    schema: int = HOST_SCHEMA_VERSION


class WireError(ValueError):
    """Why a reading is not usable (one line)."""


def encode(stats: HostStats, *, name: str, at: float, interval: float, took_ms: float) -> str:
    """Return the compact JSON text of one reading (what the agent writes to Redis)."""
    host = {
        "hostname": stats.hostname,
        "memory_total_bytes": stats.memory_total_bytes,
        "memory_available_bytes": stats.memory_available_bytes,
        "memory_percent": stats.memory_percent,
        "swap_total_bytes": stats.swap_total_bytes,
        "swap_used_bytes": stats.swap_used_bytes,
        "swap_percent": stats.swap_percent,
        "load_1m": stats.load_1m,
        "load_5m": stats.load_5m,
        "load_15m": stats.load_15m,
        "cpu_count": stats.cpu_count,
        "cpu_percent": stats.cpu_percent,
        "disks": [[d.path, d.total_bytes, d.used_bytes, d.free_bytes, d.percent, d.error]
                  for d in stats.disks],
        "roles": [[r.role, r.processes, r.rss_bytes] for r in stats.roles],
        "unreadable_processes": stats.unreadable_processes,
    }
    document = {"v": HOST_SCHEMA_VERSION, "name": name, "at": round(at, 3),
                "interval": interval, "took_ms": round(took_ms, 1), "host": host}
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


def _constant(text: str) -> None:
    raise WireError(f"has {text}, not a number")


def decode(raw: object, name: str) -> tuple[WireReading | None, str | None]:
    """Read the reading stored under ``name``: (reading, None) or (None, one-line problem).

    Never raises, whatever ``raw`` is.
    """
    try:
        return _decode(raw, name), None
    except WireError as exc:
        return None, _one_line(str(exc))
    except RecursionError:
        return None, "is nested too deeply"
    except Exception as exc:  # never let a reading stop a tick
        return None, _one_line(f"cannot be read: {type(exc).__name__}")


def _one_line(text: str) -> str:
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= PROBLEM_MAX else flat[:PROBLEM_MAX - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _decode(raw: object, name: str) -> WireReading:
    if isinstance(raw, bytes):
        if len(raw) > WIRE_MAX:
            raise WireError(f"is {len(raw)} bytes, more than {WIRE_MAX}")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("is not UTF-8") from None
    if not isinstance(raw, str):
        raise WireError(f"is a {type(raw).__name__}, not text")
    if len(raw) > WIRE_MAX or len(raw.encode("utf-8", "replace")) > WIRE_MAX:
        raise WireError(f"is more than {WIRE_MAX} bytes")
    if not raw.strip():
        raise WireError("is empty")
    try:
        document = json.loads(raw, parse_constant=_constant)
    except WireError:
        raise
    except ValueError:
        raise WireError("is not valid JSON") from None
    if not isinstance(document, dict):
        raise WireError(f"is a JSON {type(document).__name__}, not an object")
    version = document.get("v")
    if version != HOST_SCHEMA_VERSION or isinstance(version, bool):
        raise WireError(f"has schema version {_show(version)}, this bot reads "
                        f"{HOST_SCHEMA_VERSION} (upgrade the bot or the agent)")
    _fields(document, FIELDS, "")
    wire_name = document["name"]
    if not isinstance(wire_name, str) or not HOST_NAME.fullmatch(wire_name):
        raise WireError(f"has name {_show(wire_name)}: not 1 to 64 letters, digits, . _ -")
    if wire_name != name:
        raise WireError(f"is named {wire_name!r}, not {name!r}")
    at = _number(document, "at", 0.0, 32_503_680_000.0)
    interval = _number(document, "interval", 0.001, INTERVAL_MAX)
    took_ms = _number(document, "took_ms", 0.0, INTERVAL_MAX * 1000)
    host = document["host"]
    if not isinstance(host, dict):
        raise WireError(f"has host {_show(host)}, not an object")
    stats = _host(host)
    return WireReading(wire_name, stats, at, interval, took_ms)


def _show(value: object) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text[:40]


def _fields(document: dict[str, Any], expected: frozenset[str], where: str) -> None:
    missing = sorted(expected - document.keys())
    if missing:
        raise WireError(f"has no {where}{missing[0]}")
    extra = sorted(str(k) for k in document.keys() - expected)
    if extra:
        raise WireError(f"has an unknown field {where}{_show(extra[0])}")


def _number(document: dict[str, Any], key: str, low: float, high: float) -> float:
    return float(_check(document[key], key, low, high, False))


def _check(value: object, label: str, low: float, high: float, whole: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(f"has {label} = {_show(value)}, not a number")
    if whole and not isinstance(value, int):
        raise WireError(f"has {label} = {_show(value)}, not a whole number")
    if isinstance(value, int) and not low <= value <= high:  # no float() of a huge int
        raise WireError(f"has {label} = {_show(value)}, out of range")
    if not math.isfinite(value) or not low <= value <= high:
        raise WireError(f"has {label} = {_show(value)}, out of range")
    return value


def _count(value: object, label: str, high: float = BYTES_MAX) -> int:
    return int(_check(value, label, 0, high, True))


def _percent(value: object, label: str) -> float:
    return float(_check(value, label, 0.0, 100.0, False))


def _text(value: object, label: str, pattern: re.Pattern[str] | None = None,
          check: Callable[[str], bool] | None = None) -> str:
    if not isinstance(value, str):
        raise WireError(f"has {label} = {_show(value)}, not text")
    if pattern is not None and not pattern.match(value):
        raise WireError(f"has {label} = {_show(value)}: not a plain name")
    if len(value) > TEXT_MAX or not value.isprintable() or _UNSAFE.search(value):
        raise WireError(f"has {label} = {_show(value)}: text a post must not carry")
    if check is not None and not check(value):
        raise WireError(f"has {label} = {_show(value)}: not allowed here")
    return value


def _host(host: dict[str, Any]) -> HostStats:
    _fields(host, HOST_FIELDS, "host.")
    total = _count(host["memory_total_bytes"], "host.memory_total_bytes")
    available = _count(host["memory_available_bytes"], "host.memory_available_bytes")
    if total == 0:
        raise WireError("has host.memory_total_bytes = 0")
    if available > total:
        raise WireError("has host.memory_available_bytes above host.memory_total_bytes")
    swap_total = _count(host["swap_total_bytes"], "host.swap_total_bytes")
    swap_used = _count(host["swap_used_bytes"], "host.swap_used_bytes")
    if swap_used > swap_total:
        raise WireError("has host.swap_used_bytes above host.swap_total_bytes")
    cpu_count = host["cpu_count"]
    cpu_percent = host["cpu_percent"]
    return HostStats(
        hostname=_text(host["hostname"], "host.hostname", _HOSTNAME),
        memory_total_bytes=total,
        memory_available_bytes=available,
        memory_percent=_percent(host["memory_percent"], "host.memory_percent"),
        swap_total_bytes=swap_total,
        swap_used_bytes=swap_used,
        swap_percent=_percent(host["swap_percent"], "host.swap_percent"),
        load_1m=float(_check(host["load_1m"], "host.load_1m", 0.0, LOAD_MAX, False)),
        load_5m=float(_check(host["load_5m"], "host.load_5m", 0.0, LOAD_MAX, False)),
        load_15m=float(_check(host["load_15m"], "host.load_15m", 0.0, LOAD_MAX, False)),
        cpu_count=None if cpu_count is None else _count(cpu_count, "host.cpu_count", CPUS_MAX),
        cpu_percent=None if cpu_percent is None else _percent(cpu_percent, "host.cpu_percent"),
        disks=_disks(host["disks"]),
        roles=_roles(host["roles"]),
        unreadable_processes=_count(host["unreadable_processes"], "host.unreadable_processes"),
    )


def _list(value: object, label: str, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise WireError(f"has {label} = {_show(value)}, not a list")
    if len(value) > most:
        raise WireError(f"has {len(value)} {label}, more than {most}")
    return value


def _disks(value: object) -> tuple[DiskStats, ...]:
    disks: list[DiskStats] = []
    for index, item in enumerate(_list(value, "host.disks", DISKS_MAX)):
        label = f"host.disks[{index}]"
        if not isinstance(item, list) or len(item) != 6:
            raise WireError(f"has {label} = {_show(item)}, not [path, total, used, free, "
                            f"percent, error]")
        path, total, used, free, percent, error = item
        path = _text(path, f"{label}.path", check=lambda p: p.startswith("/"))
        if error is not None:
            _text(error, f"{label}.error")
            if not (total is None and used is None and free is None and percent is None):
                raise WireError(f"has {label} with both an error and figures")
            disks.append(DiskStats(path, None, None, None, None, error))
            continue
        total_n = _count(total, f"{label}.total")
        used_n, free_n = _count(used, f"{label}.used"), _count(free, f"{label}.free")
        if used_n > total_n or free_n > total_n:
            raise WireError(f"has {label} with more used or free than its total")
        disks.append(DiskStats(path, total_n, used_n, free_n,
                               _percent(percent, f"{label}.percent")))
    return tuple(disks)


def _roles(value: object) -> tuple[RoleMemory, ...]:
    roles: list[RoleMemory] = []
    for index, item in enumerate(_list(value, "host.roles", ROLES_MAX)):
        label = f"host.roles[{index}]"
        if not isinstance(item, list) or len(item) != 3:
            raise WireError(f"has {label} = {_show(item)}, not [role, processes, rss]")
        role, processes, rss = item
        roles.append(RoleMemory(_text(role, f"{label}.role", _ROLE),
                                _count(processes, f"{label}.processes", 2**31),
                                _count(rss, f"{label}.rss")))
    return tuple(roles)


def error_text(exc: BaseException) -> str:
    """Return one line about an error at either end of the wire (agent or bot), at most 200."""
    text = " ".join(str(exc).split())[:200] or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
