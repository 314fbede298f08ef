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


# ------------------------------------------------------------------ RSA per breath


def _rsa(mayer_bpm: float) -> tuple[float | None, float]:
    """(RSA per breath, textbook band spread 2 sqrt 2 SD in 0.05-0.5 Hz) of a heart with a
    6 bpm peak-to-valley swing at 12 breaths/min and a Mayer wave at 0.1 Hz."""
    from scipy import signal

    from coach.heart import HeartTracker

    def hr_at(t: float) -> float:
        return 70.0 + 3.0 * math.sin(2 * math.pi * 0.2 * t) + mayer_bpm * math.sin(
            2 * math.pi * 0.1 * t + 1.0)

    t, beats = 0.0, []
    while t < 120.0:
        rr = 60000.0 / hr_at(t)
        t += rr / 1000.0
        beats.append((t, rr))
    heart = HeartTracker()
    heart.push(HeartRate(120.0, "A", 70.0, rr_ms=tuple(r for _, r in beats),
                         beat_t_s=tuple(b for b, _ in beats)), beats)
    onsets = [k * 5.0 - 1.25 for k in range(1, 25)]  # heart rate lowest at each onset
    grid = np.arange(60.0, 120.0, 0.25)
    hr = np.interp(grid, [b for b, _ in beats], [60000.0 / r for _, r in beats])
    sos = signal.butter(2, (0.05, 0.5), btype="bandpass", fs=4.0, output="sos")
    band = signal.sosfiltfilt(sos, hr - hr.mean())[20:-20]
    return heart.rsa_bpm(120.0, onsets), float(2 * math.sqrt(2) * band.std())


def test_rsa_is_measured_per_breath_and_mayer_waves_weigh_little() -> None:
    alone, band_alone = _rsa(0.0)
    assert alone is not None and 5.0 <= alone <= 6.5  # the 6 bpm swing, sampled by beats
    mixed, band_mixed = _rsa(3.0)
    assert mixed is not None
    assert band_mixed - band_alone > 2.0  # the band spread counts the Mayer wave in full
    assert abs(mixed - alone) < 0.5 * (band_mixed - band_alone)
