"""Arousal alerts from the artifact-corrected beats, through a partner's tracker.

Beats are fed as a strap reports them (one Heart Rate Measurement a second, with the
beats that ended in it); the alert is read from the tracker's published state.
"""

from __future__ import annotations

import math

import numpy as np

from coach.tracker import PartnerTracker
from coach.types import HeartRate


def _beats(seconds: float, hr_at, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Beat times and intervals of a heart at ``hr_at(t)`` bpm with a breathing swing."""
    t, out = 0.0, []
    while t < seconds:
        hr = hr_at(t) + 4.0 * math.sin(2 * math.pi * t / 6.0) + rng.normal(0, 0.5)
        rr = 60000.0 / hr
        t += rr / 1000.0
        out.append((t, rr))
    return out


def _alerts(beats: list[tuple[float, float]], seconds: int) -> dict[int, bool | None]:
    tracker = PartnerTracker("A")
    out, k = {}, 0
    for second in range(1, seconds + 1):
        batch = []
        while k < len(beats) and beats[k][0] <= second:
            batch.append(beats[k])
            k += 1
        rr = tuple(r for _, r in batch)
        hr = 60000.0 / float(np.mean(rr)) if rr else float("nan")
        tracker.push(HeartRate(float(second), "A", hr, rr_ms=rr,
                               beat_t_s=tuple(t for t, _ in batch), contact=True))
        out[second] = tracker.state(float(second)).alert
    return out


def _with_extra_beat(beats: list[tuple[float, float]], at_s: float) -> list[tuple[float, float]]:
    """One spurious beat splits the interval ending after ``at_s`` (857 -> 400 + 457 style)."""
    j = next(i for i, (t, _) in enumerate(beats) if t > at_s)
    t, rr = beats[j]
    first = 0.47 * rr
    return [*beats[:j], (t - (rr - first) / 1000.0, first), (t, rr - first), *beats[j + 1:]]


def _with_missed_beat(beats: list[tuple[float, float]], at_s: float) -> list[tuple[float, float]]:
    """One beat the strap did not see: two intervals reported as one."""
    j = next(i for i, (t, _) in enumerate(beats) if t > at_s)
    return [*beats[:j], (beats[j + 1][0], beats[j][1] + beats[j + 1][1]), *beats[j + 2:]]


def test_one_artefact_beat_never_sets_an_alert() -> None:
    for seed in range(4):
        beats = _beats(200.0, lambda t: 70.0, np.random.default_rng(seed))
        alerts = _alerts(_with_extra_beat(beats, 150.0), 200)
        assert not any(alerts.values()), seed


def test_one_missed_beat_never_sets_an_alert() -> None:
    for seed in range(4):
        beats = _beats(200.0, lambda t: 70.0, np.random.default_rng(seed))
        alerts = _alerts(_with_missed_beat(beats, 150.0), 200)
        assert not any(alerts.values()), seed


def test_a_real_15_bpm_rise_sets_the_alert_within_8_s() -> None:
    for seed in range(4):
        beats = _beats(200.0, lambda t: 70.0 + (15.0 if t >= 150.0 else 0.0),
                       np.random.default_rng(seed))
        alerts = _alerts(beats, 200)
        assert not any(v for t, v in alerts.items() if t < 150)
        assert any(alerts[t] for t in range(150, 159)), seed
