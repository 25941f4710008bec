"""``statusbot demo`` runs end to end on throwaway local servers."""

from __future__ import annotations

import io
import re

import pytest

from bot.demo import missing, run_demo
from tests.integration.conftest import need

pytestmark = pytest.mark.integration


def test_demo_shows_an_incident_from_notice_to_resolution() -> None:
    """A backlog builds and drains; the notice, the admin DM and the resolution are shown."""
    need("; ".join(missing()) or None)
    out = io.StringIO()
    assert run_demo(out, seconds=120, build_for=22) == 0
    text = out.getvalue()
    assert "public, new post, CW: Service notice" in text
    assert "direct message to the admins" in text
    assert "reply in the thread, CW: Service notice: resolved" in text
    match = re.search(r"Done: (\d+) statuses published, each once", text)
    assert match is not None, text
    assert int(match.group(1)) >= 4
    assert "ran out of time" not in text
