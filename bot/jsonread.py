"""Strict readers for state the bot stored as JSON: a wrong type is a ValueError, never a guess.

``health.HealthState`` and ``incidents.IncidentState`` read their stored JSON
with these, so a damaged state file is reported, not half-loaded.
"""

from __future__ import annotations


def number(value: object) -> float:
    """Return an int or float as float; anything else (bool included) raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r:.40}")
    return float(value)


def optional_number(value: object) -> float | None:
    """Return None for None, else ``number(value)``."""
    return None if value is None else number(value)


def whole(value: object) -> int:
    """Return an int (not a bool); anything else raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r:.40}")
    return value


def flag(value: object) -> bool:
    """Return a bool; anything else raises ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r:.40}")
    return value


def text(value: object) -> str:
    """Return a str; anything else raises ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r:.40}")
    return value
