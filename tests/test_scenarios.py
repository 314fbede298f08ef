"""Closed loop in virtual time: the simulated couple, the trackers and the orb together.

Each test runs ``coach demo --headless --json`` in-process (the printed JSON is what is
checked) and holds it to the foundation issue's acceptance.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from functools import cache

import numpy as np
import pytest
from demo_runs import DemoRuns

SLEW_PER_S = 1.0 / 60.0  # breaths/min per second (1 per minute)
# every session of this module, run on both cores (tests/demo_runs.py)
RUNS = DemoRuns(("calm-anchor", 1, 900.0, True), ("anchor-flip", 1, 900.0, True),
                ("dropout", 1, 600.0, True), ("solo", 1, 300.0, True))


@pytest.fixture(scope="module", autouse=True)
def _workers() -> Iterator[None]:
    yield
    RUNS.close()


@cache
def _states(scenario: str, duration: float, seed: int = 1) -> tuple[list[dict], dict]:
    printed, summary = RUNS.get(scenario, seed, duration, True)
    lines = [json.loads(line) for line in printed.splitlines()]
    return lines, summary


def _median(states: list[dict], key) -> float:
    values = [key(s) for s in states]
    return float(np.median([v for v in values if v is not None]))


def test_one_json_state_per_simulated_second_with_the_contract_fields() -> None:
    states, summary = _states("calm-anchor", 900.0)
    assert [s["t_s"] for s in states] == pytest.approx(list(range(1, 901)))
    assert summary["summary"] is True and summary["errors"] == 0
    for s in states:
        assert set(s["partners"]) == {"A", "B"}
        for p in s["partners"].values():
            assert {"rate_bpm", "phase", "hr_bpm", "calm", "status"} <= set(p)
            assert p["phase"] is None or 0.0 <= p["phase"] < 2 * math.pi
        if s["pacer"] is not None:
            assert 0.0 <= s["pacer"]["phase"] < 2 * math.pi
    json.dumps(states, allow_nan=False)


def test_calm_anchor_pacer_starts_with_the_couple_and_settles_on_the_calmer_partner() -> None:
    states, _ = _states("calm-anchor", 900.0)
    paced = [s for s in states if s["pacer"] is not None]
    # the pacer starts on rates trusted for 30 s (issue 13: confidence above the quality
    # gate for 30 s; the first rate comes at 30 s, its confidence builds over windows)
    assert paced and paced[0]["t_s"] <= 100.0
    first = paced[0]
    mean_rate = np.mean([p["rate_bpm"] for p in first["partners"].values()])
    assert abs(first["pacer"]["rate_bpm"] - mean_rate) <= 2.0

    rates = np.array([s["pacer"]["rate_bpm"] for s in paced])
    assert np.max(np.abs(np.diff(rates))) <= SLEW_PER_S + 1e-4  # JSON rounds to 4 digits

    last_minute = states[-60:]
    pacer_end = states[-1]["pacer"]["rate_bpm"]
    a_rate = _median(last_minute, lambda s: s["partners"]["A"]["rate_bpm"])
    b_rate = _median(last_minute, lambda s: s["partners"]["B"]["rate_bpm"])
    # the anchor is the partner calmer against their own baseline: here B, whom the orb
    # calmed (A stays as at their baseline); the orb follows them
    anchor = states[-1]["anchor"]
    other = "A" if anchor == "B" else "B"
    calm = {k: _median(last_minute, lambda s, k=k: s["partners"][k]["calm"]) for k in "AB"}
    assert calm[anchor] >= calm[other]
    anchor_rate = a_rate if anchor == "A" else b_rate
    assert abs(pacer_end - anchor_rate) <= 1.0
    assert abs(b_rate - pacer_end) <= 2.0
    # B started activated near 16/min and was led down
    b_start = _median(states[20:60], lambda s: s["partners"]["B"]["rate_bpm"])
    assert b_start > 13.0 > b_rate


def test_anchor_flip_changes_anchor_once_and_the_orb_never_jumps() -> None:
    states, summary = _states("anchor-flip", 900.0)
    anchors = [s["anchor"] for s in states if s["anchor"] is not None]
    changes = sum(a != b for a, b in itertools.pairwise(anchors))
    assert changes == 1 and anchors[0] == "A" and anchors[-1] == "B"
    assert summary["anchor_changes"] == 1
    paced = [s["pacer"] for s in states if s["pacer"] is not None]
    for before, after in itertools.pairwise(paced):
        advance = (after["phase"] - before["phase"]) % (2 * math.pi)
        explained = 2 * math.pi * before["rate_bpm"] / 60.0 * 1.0
        # the rate may change by at most the slew within the second
        assert abs(advance - explained) <= 2 * math.pi * SLEW_PER_S / 60.0 + 1e-4


def test_dropout_shows_the_loss_goes_on_with_a_and_b_comes_back() -> None:
    states, summary = _states("dropout", 600.0)
    by_t = {round(s["t_s"]): s for s in states}
    lost_at = [t for t in range(181, 226) if by_t[t]["partners"]["B"]["status"] == "lost"]
    assert lost_at and lost_at[0] <= 185  # outage starts at 180 s
    assert all(by_t[t]["partners"]["A"]["status"] == "ok" for t in range(60, 600))
    assert all(by_t[t]["pacer"] is not None for t in range(100, 600))
    assert all(by_t[t]["partners"]["A"]["rate_bpm"] is not None for t in range(190, 226))
    back = [t for t in range(226, 600) if by_t[t]["partners"]["B"]["status"] == "ok"]
    assert back and back[0] <= 230
    assert by_t[300]["partners"]["B"]["rate_bpm"] is not None
    assert summary["strap_losses"]["B"] == 1


def test_solo_runs_with_one_person() -> None:
    states, _ = _states("solo", 300.0)
    assert set(states[-1]["partners"]) == {"A"}
    assert states[-1]["anchor"] == "A" and states[-1]["pacer"] is not None
