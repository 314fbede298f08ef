"""The simulated person behaves like the physiology it claims to model."""

from __future__ import annotations

import numpy as np
import pytest

from coach.types import TWO_PI, PacerState
from sims.person import Person, PersonSpec


def _run(person: Person, seconds: float, orb: PacerState | None = None) -> dict[str, np.ndarray]:
    """Advance in 0.25 s steps; collect signals and the true phase after each step."""
    t, ph, acc, beats, rr, ecg = [], [], [], [], [], []
    steps = int(seconds / 0.25)
    for k in range(1, steps + 1):
        sig = person.advance(k * 0.25, orb)
        t.append(person.t_s)
        ph.append(person.phase)
        acc.append(sig.acc.acc_mg)
        ecg.append(sig.ecg.ecg_uv)
        beats.extend(sig.beat_t_s)
        rr.extend(sig.rr_ms)
    return {"t": np.array(t), "phase": np.unwrap(ph), "acc": np.vstack(acc),
            "beats": np.array(beats), "rr": np.array(rr), "ecg": np.concatenate(ecg)}


def _breaths_per_min(run: dict[str, np.ndarray], after_s: float = 60.0) -> float:
    keep = run["t"] >= after_s
    cycles = (run["phase"][keep][-1] - run["phase"][keep][0]) / TWO_PI
    return 60.0 * cycles / (run["t"][keep][-1] - run["t"][keep][0])


def test_same_seed_same_person_other_seed_other_person() -> None:
    a = _run(Person(PersonSpec("A"), np.random.default_rng(7)), 20)
    b = _run(Person(PersonSpec("A"), np.random.default_rng(7)), 20)
    c = _run(Person(PersonSpec("A"), np.random.default_rng(8)), 20)
    assert np.array_equal(a["acc"], b["acc"]) and np.array_equal(a["rr"], b["rr"])
    assert not np.array_equal(a["acc"], c["acc"])


def test_activated_people_breathe_faster_and_have_faster_hearts() -> None:
    calm = _run(Person(PersonSpec("A", arousal=0.1), np.random.default_rng(1)), 300)
    tense = _run(Person(PersonSpec("B", arousal=0.9), np.random.default_rng(1)), 300)
    assert _breaths_per_min(calm) < 9.0 < 14.0 < _breaths_per_min(tense)
    assert np.mean(60000 / calm["rr"]) + 15 < np.mean(60000 / tense["rr"])


def test_heart_rate_rises_on_the_inhale() -> None:
    person = Person(PersonSpec("A", arousal=0.2, rsa_bpm=10.0), np.random.default_rng(3))
    run = _run(person, 300)
    hr = 60000.0 / run["rr"]
    frac = person.physiology.inhale_fraction
    lag = person.physiology.rsa_lag_s
    phase_at_beat = np.interp(run["beats"] - lag, run["t"], run["phase"]) % TWO_PI
    late_inhale = (phase_at_beat > 0.7 * frac * TWO_PI) & (phase_at_beat < frac * TWO_PI)
    late_exhale = phase_at_beat > 0.85 * TWO_PI
    assert hr[late_inhale].mean() > hr[late_exhale].mean() + 3.0


def test_rr_intervals_sit_on_the_straps_1_1024_s_grid() -> None:
    run = _run(Person(PersonSpec("A"), np.random.default_rng(2)), 60)
    ticks = run["rr"] * 1024.0 / 1000.0
    assert np.allclose(ticks, np.round(ticks), atol=1e-9)
    assert np.allclose(np.diff(run["beats"]) * 1000.0, run["rr"][1:], atol=1e-6)


def test_chest_accelerometer_feels_gravity_and_breathing() -> None:
    person = Person(PersonSpec("A", arousal=0.2), np.random.default_rng(4))
    run = _run(person, 120)
    norm = np.linalg.norm(run["acc"], axis=1)
    assert np.median(norm) == pytest.approx(1000.0, rel=0.03)  # 1 g in mG
    x = run["acc"] - run["acc"].mean(axis=0)
    spectrum = np.abs(np.fft.rfft(x, axis=0)).sum(axis=1)
    freqs = np.fft.rfftfreq(len(x), 1 / 200.0)
    band = (freqs > 0.05) & (freqs < 1.0)
    peak_bpm = 60.0 * freqs[band][np.argmax(spectrum[band])]
    assert peak_bpm == pytest.approx(_breaths_per_min(run, 0.0), abs=1.0)


def test_ecg_has_an_r_wave_just_after_each_beat() -> None:
    run = _run(Person(PersonSpec("A"), np.random.default_rng(5)), 30)
    t = np.arange(len(run["ecg"])) / 130.0
    for beat in run["beats"][2:-2]:
        near = (t > beat - 0.2) & (t < beat + 0.25)
        t_peak = t[near][np.argmax(run["ecg"][near])]
        assert 0.0 <= t_peak - beat <= 0.07


def test_each_person_draws_their_own_physiology_within_its_ranges() -> None:
    drawn = [Person(PersonSpec("A"), np.random.default_rng(seed)).physiology
             for seed in range(40)]
    lags = [p.rsa_lag_s for p in drawn]
    fracs = [p.inhale_fraction for p in drawn]
    assert 0.0 <= min(lags) < 0.5 and 2.5 < max(lags) <= 3.0
    assert 0.3 <= min(fracs) < 0.33 and 0.47 < max(fracs) <= 0.5
    assert {p.edr_sign for p in drawn} == {-1.0, 1.0}
    axes = np.array([p.breath_axis for p in drawn])
    assert np.allclose(np.linalg.norm(axes, axis=1), 1.0)
    assert (axes[:, 2] < 0).any() and (axes[:, 2] > 0).any()  # the strap's frame, either way
    fixed = Person(PersonSpec("A", rsa_lag_s=2.5, inhale_fraction=0.3, edr_sign=-1.0),
                   np.random.default_rng(0)).physiology
    assert (fixed.rsa_lag_s, fixed.inhale_fraction, fixed.edr_sign) == (2.5, 0.3, -1.0)


@pytest.mark.parametrize("compliance, locked", [(1.0, True), (0.0, False)])
def test_compliant_people_lock_onto_the_orb(compliance: float, locked: bool) -> None:
    orb = PacerState(0.0, 0.0, 6.0)
    person = Person(PersonSpec("B", arousal=0.8, compliance=compliance), np.random.default_rng(6))
    run = _run(person, 300, orb)
    keep = run["t"] > 150
    diff = run["phase"][keep] - np.array([orb.phase_at(t) for t in run["t"][keep]])
    plv = abs(np.mean(np.exp(1j * diff)))
    assert bool(plv > 0.9) is locked
    rate = _breaths_per_min(run, 150)
    assert bool(abs(rate - 6.0) < 0.5) is locked
