"""The report as a reader sees it: opened in a real headless browser (Chromium).

The page is made by ``coach report`` from a simulated session with markers; Chromium
renders it (``--dump-dom``: the DOM after layout and scripts) and every marker note must
be in the rendered text; a screenshot is taken as the docs' is (docs/sessions.md).
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

from coach.clock import VirtualClock
from coach.commands.demo import build
from coach.commands.record import record_session
from coach.recording import Recorder
from coach.types import Command

ROOT = Path(__file__).resolve().parents[1]
NOTES = {60.0: "B says she feels unheard <again> & leaves the room",
         150.0: "repair attempt: A reaches for B's hand\nB accepts",
         240.0: "both laugh; \"that was different\""}


def record_with_markers(path: Path, scenario: str = "dropout", minutes: float = 5.0) -> None:
    """A simulated session with the therapist's markers, as ``coach demo --record``."""
    clock = VirtualClock()

    async def main() -> None:
        session, world = build(clock, scenario, 3)
        settings = {"source": "demo", "straps": "simulated", "scenario": scenario, "seed": 3}
        recorder = Recorder(path, labels=tuple(world.labels), settings=settings,
                            now=clock.now, t_origin_s=clock.now())

        async def mark() -> None:
            start = clock.now()
            for at, note in NOTES.items():
                await clock.sleep_until(start + at)
                session.command(Command("marker", "note", note))

        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(minutes * 60.0), name="sim.world")
            tg.create_task(mark(), name="test.markers")
            await record_session(session, world.sources(), recorder, minutes * 60.0)

    clock.run(main())


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is missing: run scripts/setup.sh as root (it installs it)"
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_every_marker_note_is_in_the_rendered_report(tmp_path: Path) -> None:
    rec, page = tmp_path / "couple.coach", tmp_path / "report" / "couple.html"
    record_with_markers(rec)
    made = subprocess.run([sys.executable, "-m", "coach.cli", "report", str(rec), "--out",
                           str(page)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert made.returncode == 0, made.stderr
    dom = chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0 and "<svg" in dom.stdout, dom.stderr[-2000:]
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom.stdout))
    for note in NOTES.values():
        assert note in text, note
    assert "strap lost (B)" in text  # the dropout scenario's 45 s without B's strap
    shot = tmp_path / "report.png"
    done = chromium("--window-size=1100,1800", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 50_000
