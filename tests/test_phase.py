"""Live breath phase against the simulator's true phase, across rates, shapes and lags.

Each simulated person has their own RSA lag and inhale fraction (sims/person.py); the
estimator learns them, it is not told. One run per (rate, lag) drives three estimators:
chest motion with the strap's beats, ECG alone, and R-R intervals alone.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest

from coach import respiration as resp
from coach.breath import BreathEstimator
from coach.types import TWO_PI, AccChunk
from sims.person import Person, PersonSpec

RATES = (5.0, 8.0, 12.0, 15.0, 18.0, 22.0, 28.0)  # breaths/min
LAGS = (0.0, 1.0, 2.5)  # s, heart rate behind the breath
FRACS = (0.3, 0.35, 0.4, 0.45)  # inhale fraction: each (rate, lag) gets the next one
SECONDS = 180.0
SETTLE_S = 60.0  # phase may be unknown (sign being established) this long at most


@functools.cache
def _errors(rate: float, lag: float) -> dict[str, tuple[np.ndarray, int]]:
    """Circular phase errors (rad) after SETTLE_S and the number of unknown phases there,
    per source."""
    i = RATES.index(rate) * len(LAGS) + LAGS.index(lag)
    spec = PersonSpec("A", arousal=0.3, compliance=0.0, natural_bpm=rate,
                      inhale_fraction=FRACS[i % len(FRACS)], rsa_lag_s=lag)
    person = Person(spec, np.random.default_rng(100 + i))
    ests = {"acc": BreathEstimator(), "ecg": BreathEstimator(), "rr": BreathEstimator()}
    err: dict[str, list[float]] = {k: [] for k in ests}
    unknown = dict.fromkeys(ests, 0)
    for k in range(1, int(SECONDS / 0.25) + 1):
        sig = person.advance(k * 0.25)
        beats = (tuple(sig.beat_t_s), tuple(sig.rr_ms))
        ests["acc"].push_acc(sig.acc)
        ests["acc"].push_beats(*beats)
        ests["ecg"].push_ecg(sig.ecg)
        ests["rr"].push_beats(*beats)
        for name, est in ests.items():
            phase = est.estimate(person.t_s).phase
            if person.t_s < SETTLE_S:
                continue
            if phase is None:
                unknown[name] += 1
            else:
                err[name].append((phase - person.phase + np.pi) % TWO_PI - np.pi)
    return {k: (np.array(v), unknown[k]) for k, v in err.items()}


def _bias_deg(e: np.ndarray) -> float:
    return float(np.degrees(np.angle(np.mean(np.exp(1j * e)))))


def _median_deg(e: np.ndarray) -> float:
    return float(np.degrees(np.median(np.abs(e))))


@pytest.fixture(autouse=True)
def _quiet() -> object:
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("rate", RATES)
def test_chest_motion_phase_is_within_25_deg_bias_and_35_deg_median(rate: float) -> None:
    """Chest motion against the simulator's true phase: known from SETTLE_S on, circular
    mean error <= 25 deg and median |error| <= 35 deg (issue 13) at every lag, also at
    5/min, where a slow breath's long flat trough made the detected onset early (the
    phase used to come from it: bias 46-59 deg) and at 28/min (29-40 deg)."""
    for lag in LAGS:
        e, unknown = _errors(rate, lag)["acc"]
        assert unknown == 0
        assert abs(_bias_deg(e)) <= 25.0, (rate, lag, _bias_deg(e))
        assert _median_deg(e) <= 35.0, (rate, lag, _median_deg(e))


def test_chest_motion_phase_bias_across_rates_and_lags() -> None:
    biases = [_bias_deg(_errors(r, lag)["acc"][0]) for r in RATES for lag in LAGS]
    pooled = np.concatenate([_errors(r, lag)["acc"][0] for r in RATES for lag in LAGS])
    assert float(np.median(np.abs(biases))) <= 10.0
    assert abs(_bias_deg(pooled)) <= 10.0 and _median_deg(pooled) <= 25.0


def test_rr_alone_uses_a_population_lag_and_does_not_flip_at_one_second() -> None:
    """R-R alone cannot see its own lag: the phase is advanced by the population lag.
    At the person's lag of 1 s it is never inverted; at 0 and 2.5 s the error grows with
    rate (it is 360 x (lag - population lag) / period), reported by the bench. Not at
    5/min: below the heart-rate sources' band (6-36/min) their rate reads anything from
    6 to 31/min and the phase is random (resultant length 0.3 before and after the phase
    from mid-crossings; its bias was 86 deg, now 100: a coin flip, not a test)."""
    for rate in RATES[1:]:
        e, unknown = _errors(rate, 1.0)["rr"]
        assert unknown <= 0.02 * e.size
        assert abs(_bias_deg(e)) < 90.0, rate


@pytest.mark.parametrize("rate", RATES[1:-1])
def test_ecg_phase_is_not_inverted_at_lags_up_to_one_second(rate: float) -> None:
    """ECG alone (R amplitude, QRS area, RSA): the sign holds at 8-22/min for lags of 0 and
    1 s, and the phase is known from SETTLE_S on. Not yet met (docs/breathing.md,
    "Polarity"): lag 2.5 s at 12-18/min and 1 s at 28/min, where the heart-rate correlation
    peaks at the true lag and half a breath off differ by a few per cent. 22/min at 1 s
    holds for these people only (bench/polarity.py: inverted for 3 of 4 seeds; its alias
    lag, -0.36 s, is nearer the prior than 1 s); once chest motion has taught the lag, every
    case holds (the test below). Not at 5/min: below the ECG band (6-36/min) the rate reads
    6-31/min and the phase is random (median |error| 77-100 deg before and after the phase
    from mid-crossings)."""
    for lag in (0.0, 1.0):
        e, unknown = _errors(rate, lag)["ecg"]
        assert unknown <= 0.02 * e.size, (rate, lag)
        assert abs(_bias_deg(e)) < 90.0, (rate, lag)


def _sign_identifiable(rate: float, lag: float) -> bool:
    """Whether ECG alone can tell this person's polarity (docs/breathing.md, "Polarity").

    R amplitude and QRS area show the breath at once, with a sign the electrodes set;
    heart rate has a known sign and a lag of its own. (sign s, lag L) and (sign -s,
    lag L +- half a period) fit them alike but for the breath-to-breath variability of
    the period, which within a minute is no evidence (measured: right in 66-69 of 84
    cases even with the simulator's true breath periods). The sign is therefore fixed
    only where each alias lies outside the lags heart rate is searched at (no peak
    there) or farther from the prior lag (lag 0: MARSH) than the person's own lag.
    At 12/min, lags 0 and 2.5 s are each other's alias: no estimator gets both."""
    half = 30.0 / rate
    lo, hi = float(resp.LAG_GRID_S[0]), float(resp.LAG_GRID_S[-1])
    return all(not lo < alias < hi or abs(alias - resp.SIGN_PRIOR_LAG_S)
               > abs(lag - resp.SIGN_PRIOR_LAG_S) for alias in (lag - half, lag + half))


@pytest.mark.parametrize("rate", RATES[1:-1])
def test_ecg_alone_phase_is_within_45_deg_bias_and_60_deg_median_where_its_sign_is_known(
    rate: float,
) -> None:
    """ECG alone against the simulator's true phase (issue 13): known from SETTLE_S on,
    circular mean error <= 45 deg, median |error| <= 60 deg at every lag whose sign ECG
    alone can tell (:func:`_sign_identifiable`). Not at 5/min: below the ECG band
    (6-36/min) its rate and phase are random (a band following a slower breath was
    measured worse on MARSH, docs/breathing.md "Polarity"). Not at 28/min: its sign is
    right at lag 0 but the phase misses the median bound (bias -19, median 62: 2.5 heart
    beats a breath; the window's phase, not the sign)."""
    for lag in LAGS:
        if not _sign_identifiable(rate, lag):
            continue
        e, unknown = _errors(rate, lag)["ecg"]
        assert unknown <= 0.02 * (e.size + unknown), (rate, lag, unknown)
        assert abs(_bias_deg(e)) <= 45.0, (rate, lag, _bias_deg(e))
        assert _median_deg(e) <= 60.0, (rate, lag, _median_deg(e))


CHEST_STOPS_S = 60.0  # s: chest motion falls silent, the ECG serves from then on


@functools.cache
def _ecg_signs_after_chest_motion(rate: float, lag: float) -> tuple[np.ndarray, float]:
    """The same person as :func:`_errors`, wearing a strap that sends chest motion (until
    CHEST_STOPS_S), beats and ECG: the ECG window's held polarity of R amplitude at every
    step from CHEST_STOPS_S + SETTLE_S on (0 = not yet known), and the person's EDR
    polarity (whether their R waves grow or shrink on inhaling)."""
    i = RATES.index(rate) * len(LAGS) + LAGS.index(lag)
    spec = PersonSpec("A", arousal=0.3, compliance=0.0, natural_bpm=rate,
                      inhale_fraction=FRACS[i % len(FRACS)], rsa_lag_s=lag)
    person = Person(spec, np.random.default_rng(100 + i))
    est, signs = BreathEstimator(), []
    for k in range(1, int(SECONDS / 0.25) + 1):
        sig = person.advance(k * 0.25)
        if person.t_s <= CHEST_STOPS_S:
            est.push_acc(sig.acc)
        est.push_beats(tuple(sig.beat_t_s), tuple(sig.rr_ms))
        est.push_ecg(sig.ecg)
        est.estimate(person.t_s)
        if person.t_s >= CHEST_STOPS_S + SETTLE_S:
            signs.append(est.windows["ecg"].signs[1])
    return np.array(signs), person.physiology.edr_sign


@pytest.mark.parametrize("rate", RATES)
def test_ecg_sign_holds_at_every_lag_once_chest_motion_has_taught_the_lag(rate: float) -> None:
    """ECG alone cannot tell a lag of L from L - period/2 with the opposite sign (see
    docs/breathing.md, "Polarity"); chest motion, whose sign its shape gives, learns the
    person's own lag, and the ECG takes its sign at that lag: right at every rate and lag
    (0, 1, 2.5 s), where ECG alone is inverted at lag 2.5 s and 12-18/min and at 1 s and
    28/min. Its phase beyond the sign is the ECG phase's own (tests above)."""
    for lag in LAGS:
        signs, edr = _ecg_signs_after_chest_motion(rate, lag)
        assert signs.size and np.all(signs == edr), (rate, lag, edr, np.unique(signs))


def _turned_over(acc: AccChunk, at_s: float) -> AccChunk:
    """The strap flipped about its long axis at ``at_s`` (within a second)."""
    t = acc.t_s + np.arange(len(acc.acc_mg)) / acc.fs_hz
    x = acc.acc_mg.copy()
    after = t >= at_s
    x[after, 0] = -x[after, 0]
    x[after, 2] = -x[after, 2]
    return AccChunk(acc.t_s, acc.label, acc.fs_hz, x)


def test_a_strap_turned_over_is_followed_within_60_s_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logging.disable(logging.NOTSET)
    person = Person(PersonSpec("A", arousal=0.3, natural_bpm=12.0, rsa_lag_s=1.0,
                               inhale_fraction=0.35), np.random.default_rng(5))
    est = BreathEstimator()
    flip_s, err_before, err_after = 150.0, [], []
    with caplog.at_level(logging.WARNING, logger="coach.respiration"):
        for k in range(1, 4 * 300 + 1):
            sig = person.advance(k * 0.25)
            est.push_acc(_turned_over(sig.acc, flip_s))
            est.push_beats(tuple(sig.beat_t_s), tuple(sig.rr_ms))
            phase = est.estimate(person.t_s).phase
            if phase is None:
                continue
            e = (phase - person.phase + np.pi) % TWO_PI - np.pi
            if 90.0 <= person.t_s < flip_s:
                err_before.append(e)
            elif person.t_s >= flip_s + 60.0:
                err_after.append(e)
    assert abs(_bias_deg(np.array(err_before))) < 45.0
    assert abs(_bias_deg(np.array(err_after))) < 45.0  # followed within 60 s
    assert est.windows["acc"].flips == 1
    assert any("polarity changed" in r.getMessage() for r in caplog.records)
