"""The chest-accelerometer breathing estimator against a person whose breath we know."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import signal

from coach.breath import AccWave, BreathEstimator
from coach.types import TWO_PI, AccChunk
from sims.person import Person, PersonSpec


def _follow(spec: PersonSpec, seconds: float, seed: int = 11):
    person = Person(spec, np.random.default_rng(seed))
    est = BreathEstimator()
    truth_onsets, rates, phases = [], [], []
    prev_phase = person.phase
    for k in range(1, int(seconds / 0.25) + 1):
        sig = person.advance(k * 0.25)
        if person.phase < prev_phase:  # the true breath wrapped: an inhale onset
            frac = (TWO_PI - prev_phase) / (person.phase + TWO_PI - prev_phase)
            truth_onsets.append(person.t_s - 0.25 + 0.25 * frac)
        prev_phase = person.phase
        est.push_acc(sig.acc)
        est.push_beats(tuple(sig.beat_t_s), tuple(sig.rr_ms))
        e = est.estimate(person.t_s)
        rates.append((person.t_s, e.rate_bpm))
        phases.append((person.t_s, e.phase, person.phase))
    return person, est, np.array(truth_onsets), rates, phases


@pytest.mark.parametrize("arousal", [0.1, 0.5, 0.9])
def test_rate_matches_the_true_breathing_rate(arousal: float) -> None:
    _, _, onsets, rates, _ = _follow(PersonSpec("A", arousal=arousal), 240)
    late_onsets = onsets[onsets > 60]
    true_bpm = 60.0 * (len(late_onsets) - 1) / (late_onsets[-1] - late_onsets[0])
    late = [r for t, r in rates if t > 60]
    assert all(r is not None for r in late[-100:])
    # breaths vary by about 12 % from one to the next: the median of the live estimate
    # stays within 0.7/min of the true mean rate
    assert np.median([r for r in late if r is not None]) == pytest.approx(true_bpm, abs=0.7)


def test_inhale_onsets_are_found_where_they_happen() -> None:
    _, est, onsets, _, _ = _follow(PersonSpec("A", arousal=0.3), 240)
    assert est.source == "acc"
    found = np.array([t for t in est.windows["acc"].onsets if t > 60])
    assert len(found) >= 5
    errors = [np.min(np.abs(onsets - t)) for t in found]
    assert np.median(errors) < 0.6  # seconds: polarity right, onset on the trough


def test_band_pass_removes_energy_above_3_hz() -> None:
    sos = AccWave().sos
    fs = 25.0
    t = np.arange(0, 120, 1 / fs)
    fast = np.sin(2 * np.pi * 5.0 * t)
    slow = np.sin(2 * np.pi * 0.2 * t)
    assert np.std(signal.sosfilt(sos, fast)[500:]) < 0.01
    assert np.std(signal.sosfilt(sos, slow)[500:]) > 0.6


def test_estimator_reports_nothing_for_a_flat_line() -> None:
    est = BreathEstimator()
    est.push_acc(AccChunk(0.0, "A", 200.0, np.tile([-1000.0, 0.0, 0.0], (12000, 1))))
    e = est.estimate(60.0)
    assert e.rate_bpm is None and e.phase is None


def _run(spec: PersonSpec, seed: int, feed: Callable[[BreathEstimator, Any, float], None]):
    """A simulated person for 240 s in 0.25 s steps; ``feed(est, signals, t)`` hands the
    estimator what the strap sends. Returns the estimator, the true inhale onsets and,
    per step, (time, estimate, source)."""
    person = Person(spec, np.random.default_rng(seed))
    est = BreathEstimator()
    onsets, prev, steps = [], person.phase, []
    for k in range(1, 4 * 240 + 1):
        sig = person.advance(k * 0.25)
        if person.phase < prev:
            onsets.append(person.t_s)
        prev = person.phase
        feed(est, sig, person.t_s)
        steps.append((person.t_s, est.estimate(person.t_s), est.source))
    return est, np.array(onsets), steps


def _beats(est: BreathEstimator, sig: Any) -> None:
    est.push_beats(tuple(sig.beat_t_s), tuple(sig.rr_ms))


def test_plain_hr_strap_breathing_comes_from_rr_alone() -> None:
    est, onsets, steps = _run(PersonSpec("A", arousal=0.2, rsa_bpm=12.0), 5,
                              lambda est, sig, _t: _beats(est, sig))
    rates = [e.rate_bpm for t, e, _ in steps if t > 90 and e.rate_bpm is not None]
    true_bpm = 60.0 / np.median(np.diff(onsets[onsets > 90]))
    assert est.source == "rr"
    assert len(rates) > 0.8 * 4 * 150
    assert np.median(rates) == pytest.approx(true_bpm, abs=1.0)


def _with_posture_shift_and_cough(acc: AccChunk, at_s: float) -> AccChunk:
    """Gravity turns by 20 degrees within 1.5 s at ``at_s`` and a cough jolts 40 s later."""
    t = acc.t_s + np.arange(len(acc.acc_mg)) / acc.fs_hz
    ang = np.radians(20.0) * np.clip((t - at_s) / 1.5, 0.0, 1.0)
    x = acc.acc_mg.copy()
    x[:, 0] += -1000.0 * (np.cos(ang) - 1.0)
    x[:, 2] += 1000.0 * np.sin(ang)
    d = t - at_s - 40.0
    k = (d >= 0) & (d < 0.6)
    x[k] += (150.0 * np.sin(2 * np.pi * 6.0 * d[k]) * np.exp(-d[k] / 0.1))[:, None]
    return AccChunk(acc.t_s, acc.label, acc.fs_hz, x)


def test_rate_holds_through_a_posture_shift_and_a_cough() -> None:
    def feed(est: BreathEstimator, sig: Any, _t: float) -> None:
        est.push_acc(_with_posture_shift_and_cough(sig.acc, 120.0))
        _beats(est, sig)

    est, onsets, steps = _run(PersonSpec("A", arousal=0.3), 7, feed)
    rates = [e.rate_bpm for t, e, _ in steps if 120.0 <= t < 200.0]
    assert est.acc.jumps >= 2  # the shift and the cough were seen
    assert sum(r is not None for r in rates) > 0.9 * len(rates)
    late = onsets[(onsets >= 110.0) & (onsets < 200.0)]
    true_bpm = 60.0 * (late.size - 1) / (late[-1] - late[0])
    assert np.median([r for r in rates if r is not None]) == pytest.approx(true_bpm, abs=1.0)


def test_no_rate_before_thirty_seconds_of_chest_motion() -> None:
    _, _, _, rates, _ = _follow(PersonSpec("A", arousal=0.5), 45)
    assert all(r is None for t, r in rates if t < 29.0)
    assert any(r is not None for t, r in rates if t > 35.0)


def test_phase_between_analyses_advances_at_the_breathing_rate() -> None:
    _, est, _, _, _ = _follow(PersonSpec("A", arousal=0.5), 120)
    est.estimate(121.0)  # due: a fresh analysis; the next second only extrapolates
    a = est.estimate(121.1)
    b = est.estimate(121.6)
    assert a.phase is not None and b.phase is not None and a.rate_bpm is not None
    advance = (b.phase - a.phase) % TWO_PI
    per_min = advance / TWO_PI / 0.5 * 60.0
    assert per_min == pytest.approx(a.rate_bpm, rel=0.3)  # the phase moves at about the rate
    assert b.level == pytest.approx(-np.cos(b.phase))


def test_ecg_takes_over_at_once_when_chest_motion_stops() -> None:
    """While chest motion serves, the ECG waits unprocessed; when the accelerometer
    falls silent, the ECG window is filled from what waited and serves within seconds."""
    def feed(est: BreathEstimator, sig: Any, t: float) -> None:
        if t <= 150.0:
            est.push_acc(sig.acc)
        est.push_ecg(sig.ecg)
        _beats(est, sig)

    _, onsets, steps = _run(PersonSpec("A", arousal=0.3), 3, feed)
    # (before ~90 s the chest motion's confidence is still building over its windows:
    # a source already above its gate may serve meanwhile)
    assert {s for t, _, s in steps if 90 < t <= 150} == {"acc"}
    handed = min(t for t, _, s in steps if t > 150 and s != "acc")
    assert handed <= 150.0 + 5.0  # silent for SOURCE_SILENT_S, then the next analysis
    # the ECG window's confidence starts afresh from what waited: the strap's RR (above
    # its quality gate) may serve for the few seconds it needs to pass its own gate
    switched = min(t for t, _, s in steps if t > 150 and s == "ecg")
    assert switched <= 150.0 + 15.0
    late = onsets[onsets > 160]
    true_bpm = 60.0 * (late.size - 1) / (late[-1] - late[0])
    rates = [e.rate_bpm for t, e, _ in steps if t > switched and e.rate_bpm is not None]
    assert np.median(rates) == pytest.approx(true_bpm, abs=1.0)
