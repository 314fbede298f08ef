"""A strap that misbehaves, end to end: simulated strap -> bleak -> driver -> session JSON.

Scenario ``faulty-b``: B's strap disconnects at 100 s (15 s), 200 s (10 s) and 300 s
(20 s), loses skin contact at 150 s for 20 s, goes silent at 400 s, and 1 % of its
notifications arrive malformed. A's strap is fine.
"""

from __future__ import annotations

import contextlib
import io
import json
from functools import cache

from coach.clock import VirtualClock
from coach.commands.demo import run_headless


@cache
def _run() -> tuple[dict[int, dict], dict]:
    out = io.StringIO()
    clock = VirtualClock()
    with contextlib.redirect_stdout(out):
        summary = clock.run(run_headless(clock, "faulty-b", 1, 480.0, emit_json=True))
    states = [json.loads(line) for line in out.getvalue().splitlines()]
    return {round(s["t_s"]): s for s in states}, summary


def _status(by_t: dict[int, dict], label: str, t: int) -> str:
    return by_t[t]["partners"][label]["status"]


def _first(by_t: dict[int, dict], label: str, status: str, start: int, end: int) -> int | None:
    return next((t for t in range(start, end) if _status(by_t, label, t) == status), None)


def test_every_fault_of_b_shows_in_the_state_and_b_resumes_within_5_s() -> None:
    by_t, _ = _run()
    for at, down in ((100, 15), (200, 10), (300, 20)):
        lost = _first(by_t, "B", "lost", at, at + down)
        assert lost is not None and lost <= at + 3
        back = _first(by_t, "B", "ok", at + down, at + down + 30)
        assert back is not None and back <= at + down + 5
    no_contact = _first(by_t, "B", "no-contact", 150, 170)
    assert no_contact is not None and no_contact <= 153
    assert _first(by_t, "B", "ok", 170, 200) is not None
    silent = _first(by_t, "B", "lost", 400, 420)  # the link stays open but says nothing
    assert silent is not None and silent <= 400 + 8
    assert _first(by_t, "B", "ok", silent, 480) is not None  # reconnected by itself


def test_a_is_unaffected() -> None:
    by_t, summary = _run()
    assert all(_status(by_t, "A", t) == "ok" for t in range(1, 481))
    assert all(by_t[t]["partners"]["A"]["rate_bpm"] is not None for t in range(90, 481))
    assert summary["frames_malformed"]["A"] == 0 and summary["connects"]["A"] == 1


def test_every_intact_frame_reached_the_pipeline_and_malformed_ones_were_counted() -> None:
    _, summary = _run()
    assert summary["errors"] == 0
    assert summary["frames_recorded"] == summary["frames_intact"]
    injected = summary["faults_injected"]["B"]
    assert injected["malformed"] > 0
    assert summary["frames_malformed"]["B"] == injected["malformed"]
    assert summary["faults_seen"]["B"]["link_losses"] >= 4  # 3 disconnects + 1 silence
