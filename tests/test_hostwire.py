"""Agent readings on the wire: what the agent writes is read back; anything else is one line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.collect import hostwire
from bot.model import HOST_SCHEMA_VERSION, DiskStats, HostStats, RoleMemory

STATS = HostStats(
    hostname="worker-2", memory_total_bytes=8 * 2**30, memory_available_bytes=2 * 2**30,
    memory_percent=75.0, swap_total_bytes=2**30, swap_used_bytes=2**28, swap_percent=25.0,
    load_1m=0.5, load_5m=0.25, load_15m=0.125, cpu_count=4, cpu_percent=12.5,
    disks=(DiskStats("/", 100, 40, 60, 40.0),
           DiskStats("/srv", None, None, None, None, "PermissionError: denied")),
    roles=(RoleMemory("sidekiq", 2, 500_000_000), RoleMemory("other", 80, 1000)),
    unreadable_processes=3)


def wire(**changes: Any) -> dict[str, Any]:
    """The JSON document of STATS, with top-level or ``host.``-prefixed changes."""
    document: dict[str, Any] = json.loads(hostwire.encode(STATS, name="worker-2", at=1.7e9,
                                                          interval=30.0, took_ms=12.5))
    for key, value in changes.items():
        if key.startswith("host."):
            document["host"][key.removeprefix("host.")] = value
        else:
            document[key] = value
    return document


def test_what_the_agent_writes_is_read_back() -> None:
    """What encode writes, decode reads back: the same HostStats and the wire fields."""
    text = hostwire.encode(STATS, name="worker-2", at=1.7e9, interval=30.0, took_ms=12.5)
    reading, problem = hostwire.decode(text, "worker-2")
    assert problem is None and reading is not None
    assert (reading.stats, reading.name, reading.at, reading.interval, reading.took_ms,
            reading.schema) == (STATS, "worker-2", 1.7e9, 30.0, 12.5, HOST_SCHEMA_VERSION)
    assert ", " not in text.replace("Error: ", "") and ": " not in text.replace("Error: ", "")


def test_bytes_are_read_too() -> None:
    """A reply that comes as bytes (a client without decoding) is read the same."""
    text = hostwire.encode(STATS, name="worker-2", at=1.7e9, interval=30.0, took_ms=1.0)
    assert hostwire.decode(text.encode(), "worker-2")[0] is not None


BAD: list[Any] = [
    pytest.param("", "is empty", id="empty"),
    pytest.param("   ", "is empty", id="blank"),
    pytest.param("{not json", "is not valid JSON", id="malformed"),
    pytest.param("x" * 70_000, "is more than 65536 bytes", id="huge"),
    pytest.param(b"\xff\xfe", "is not UTF-8", id="not-utf8"),
    pytest.param(b"x" * 70_000, "is 70000 bytes, more than 65536", id="huge-bytes"),
    pytest.param(12, "is a int, not text", id="not-text"),
    pytest.param(None, "is a NoneType, not text", id="none"),
    pytest.param("[" * 30_000 + "]" * 30_000, "is nested too deeply", id="deeply-nested"),
    pytest.param("[1, 2]", "is a JSON list, not an object", id="list"),
    pytest.param(json.dumps(wire(v=2)),
                 "has schema version 2, this bot reads 1 (upgrade the bot or the agent)",
                 id="other-schema"),
    pytest.param(json.dumps(wire(v=True)), "has schema version True, this bot reads 1 "
                 "(upgrade the bot or the agent)", id="schema-bool"),
    pytest.param('{"v": 1}', "has no at", id="missing-fields"),
    pytest.param(json.dumps(wire(extra=1)), "has an unknown field 'extra'", id="extra-field"),
    pytest.param(json.dumps(wire(name="worker-3")), "is named 'worker-3', not 'worker-2'",
                 id="name-mismatch"),
    pytest.param(json.dumps(wire(name="@someone")),
                 "has name '@someone': not 1 to 64 letters, digits, . _ -", id="name-mention"),
    pytest.param(json.dumps(wire(**{"host.hostname": "@someone@evil.example"})),
                 "has host.hostname = '@someone@evil.example': not a plain name",
                 id="hostname-mention"),
    pytest.param(json.dumps(wire(**{"host.disks": [["/x @someone", 1, 0, 1, 0.0, None]]})),
                 "has host.disks[0].path = '/x @someone': text a post must not carry",
                 id="path-mention"),
    pytest.param(json.dumps(wire(**{"host.disks": [["/x\x1b[31m", 1, 0, 1, 0.0, None]]})),
                 "has host.disks[0].path = '/x\\x1b[31m': text a post must not carry",
                 id="path-escape"),
    pytest.param(json.dumps(wire(**{"host.roles": [["#tag", 1, 1]]})),
                 "has host.roles[0].role = '#tag': not a plain name", id="role-hashtag"),
    pytest.param(json.dumps(wire()).replace("\"load_1m\": 0.5", "\"load_1m\": NaN"),
                 "has NaN, not a number", id="nan"),
    pytest.param(json.dumps(wire()).replace("\"load_1m\": 0.5", "\"load_1m\": Infinity"),
                 "has Infinity, not a number", id="infinity"),
    pytest.param(json.dumps(wire()).replace("\"load_1m\": 0.5", "\"load_1m\": 1e999"),
                 "has host.load_1m = inf, out of range", id="overflowing-float"),
    pytest.param(json.dumps(wire(**{"host.memory_total_bytes": 10**400})),
                 "out of range", id="huge-int"),
    pytest.param(json.dumps(wire(**{"host.memory_available_bytes": -1})),
                 "has host.memory_available_bytes = -1, out of range", id="negative"),
    pytest.param(json.dumps(wire(**{"host.memory_available_bytes": 9 * 2**30})),
                 "has host.memory_available_bytes above host.memory_total_bytes",
                 id="more-available-than-total"),
    pytest.param(json.dumps(wire(**{"host.memory_total_bytes": 0,
                                    "host.memory_available_bytes": 0})),
                 "has host.memory_total_bytes = 0", id="no-memory"),
    pytest.param(json.dumps(wire(**{"host.memory_percent": 101})),
                 "has host.memory_percent = 101, out of range", id="percent-over-100"),
    pytest.param(json.dumps(wire(**{"host.memory_total_bytes": "8G"})),
                 "has host.memory_total_bytes = '8G', not a number", id="string-number"),
    pytest.param(json.dumps(wire(**{"host.memory_total_bytes": 8.5e9})),
                 "has host.memory_total_bytes = 8500000000.0, not a whole number",
                 id="float-bytes"),
    pytest.param(json.dumps(wire(**{"host.cpu_count": True})),
                 "has host.cpu_count = True, not a number", id="bool-number"),
    pytest.param(json.dumps(wire(interval=0)), "has interval = 0, out of range",
                 id="zero-interval"),
    pytest.param(json.dumps(wire(host=[])), "has host list, not an object", id="host-list"),
    pytest.param(json.dumps(wire(**{"host.disks": [[[[[[["/"]]]]]]]})),
                 "has host.disks[0] = list, not [path, total, used, free, percent, error]",
                 id="nested-disks"),
    pytest.param(json.dumps(wire(**{"host.disks": [["/", 1, 0, 1, 0.0, None]] * 33})),
                 "has 33 host.disks, more than 32", id="too-many-disks"),
    pytest.param(json.dumps(wire(**{"host.disks": [["/", 1, 2, 1, 0.0, None]]})),
                 "has host.disks[0] with more used or free than its total", id="disk-over"),
]


@pytest.mark.parametrize(("raw", "problem"), BAD)
def test_bad_input_is_one_line_never_an_exception(raw: object, problem: str) -> None:
    """Every bad reading is refused with its one-line problem."""
    reading, found = hostwire.decode(raw, "worker-2")
    assert reading is None and found is not None
    assert problem in found
    assert "\n" not in found and len(found) <= hostwire.PROBLEM_MAX


def test_problems_carry_no_control_characters() -> None:
    """The problem text is printable even when the bad value is not."""
    raw = json.dumps(wire(**{"host.hostname": "a\nb\x1b[2J"}))
    _, problem = hostwire.decode(raw, "worker-2")
    assert problem is not None and problem.isprintable()
