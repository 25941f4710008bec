"""The npm packages scripts/test.sh installs are the versions the integration tests check for."""

from __future__ import annotations

import re

from tests.integration import npm


def test_test_sh_installs_the_pinned_versions() -> None:
    """scripts/test.sh and tests/integration/npm.py name the same packages at the same versions."""
    script = (npm.REPO / "scripts" / "test.sh").read_text(encoding="utf-8")
    found = re.search(r"^npm_packages=\(([^)]*)\)$", script, re.MULTILINE)
    assert found is not None
    pinned = dict(item.rsplit("@", 1) for item in found.group(1).split())
    assert pinned == npm.PINS
