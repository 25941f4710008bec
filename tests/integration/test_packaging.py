"""The package as the Dockerfile installs it: built from the source tree."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_wheel_has_the_package_and_the_console_script(tmp_path: Path) -> None:
    """`pip install .` gets every module, the type marker and the `statusbot` command."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path), str(ROOT)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("statusbot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "bot").rglob("*.py")}
    assert sources <= names
    assert "bot/py.typed" in names
    assert not any(name.startswith("tests/") for name in names)
    (entry_points,) = (n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "statusbot = bot.cli:main" in text


def test_dockerfile_copies_what_exists() -> None:
    """Every COPY source exists; the image runs as a non-root user with the CLI entry point."""
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source
    assert re.search(r"^USER statusbot$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["statusbot"]' in text
    assert "/etc/statusbot/config.toml" in text
