"""The npm packages the page tests use, as ``scripts/test.sh`` installs them into ``.cache/npm``.

``PINS`` names the exact versions; ``scripts/test.sh`` installs the same ones
(``tests/test_npm_pins.py`` checks that the two agree). ``package_dir`` finds
an installed package and ``missing`` says why the tests that need it cannot
run (then they skip, or fail under ``STATUSBOT_REQUIRE_INTEGRATION=1``).
``STATUSBOT_NPM_DIR`` points elsewhere than ``.cache/npm``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PINS = {"axe-core": "4.11.1", "statuspage.io": "3.3.8"}
"""npm package → the exact version the tests were written against."""


def prefix() -> Path:
    """Return the ``npm install --prefix`` directory the packages are in."""
    return Path(os.environ.get("STATUSBOT_NPM_DIR") or REPO / ".cache" / "npm")


def package_dir(name: str) -> Path:
    """Return where package ``name`` is installed (it may not be)."""
    return prefix() / "node_modules" / name


def installed_version(name: str) -> str | None:
    """Return the version of ``name`` installed under ``prefix()``, None when there is none."""
    try:
        manifest = json.loads((package_dir(name) / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = manifest.get("version") if isinstance(manifest, dict) else None
    return version if isinstance(version, str) else None


def missing(*names: str, node: bool = False) -> str | None:
    """Return why the packages ``names`` (and node, when asked) cannot be used, or None."""
    if node and node_path() is None:
        return "node is not installed (apt-get install nodejs)"
    for name in names:
        version = installed_version(name)
        if version is None:
            return (f"npm package {name} is not installed in {prefix()} "
                    f"(bash scripts/test.sh installs it)")
        if version != PINS[name]:
            return (f"npm package {name} is {version} in {prefix()}, the tests want "
                    f"{PINS[name]} (bash scripts/test.sh installs it)")
    return None


def node_path() -> str | None:
    """Return the ``node`` executable, None when there is none."""
    return shutil.which("node")


def node_version() -> str:
    """Return what ``node --version`` says."""
    path = node_path()
    if path is None:
        return "none"
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                            check=False)
    return result.stdout.strip()
