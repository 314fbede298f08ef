"""R-R artifact correction and RSA breathing."""

import os
from pathlib import Path

import numpy as np

from coach.analyze import analyze_rr
from coach.rr import BeatResampler, rr_beat_times, rr_clean

DATA = Path(os.environ.get("COACH_DATA", Path(__file__).parents[1] / ".." / "shared" / "data"))


def rsa_series(n: int = 400, rate_bpm: float = 12.0, seed: int = 2) -> np.ndarray:
    """R-R intervals (ms) modulated by breathing at ``rate_bpm``."""
    rng = np.random.default_rng(seed)
    rr = np.empty(n)
    t = 0.0
    for i in range(n):
        rr[i] = 850 + 60 * np.sin(2 * np.pi * rate_bpm / 60 * t) + rng.normal(0, 8)
        t += rr[i] / 1000
    return rr


def test_clean_series_passes_unchanged():
    rr = rsa_series()
    _t, out = rr_clean(rr_beat_times(rr), rr)
    np.testing.assert_allclose(out, rr)


def test_missed_extra_and_ectopic_beats_are_corrected():
    rr = rsa_series()
    bad = rr.copy()
    bad[100] = rr[100] + rr[101]  # missed beat
    bad = np.delete(bad, 101)
    bad = np.insert(bad, 200, [300.0, rr[200] - 300.0])  # extra beat splits one interval
    bad[300] -= 250
    bad[301] += 250  # ectopic: short then long
    _t, out = rr_clean(rr_beat_times(bad), bad)
    assert abs(out.size - rr.size) <= 1
    assert np.max(np.abs(out - np.median(rr))) < 250
    assert np.max(np.abs(np.diff(out))) < 200


def test_resampler_matches_interp():
    t = np.cumsum(np.random.default_rng(0).uniform(0.6, 1.1, 50))
    v = np.sin(t)
    r = BeatResampler(4.0)
    parts = [r.push(a, b) for a, b in zip(t, v, strict=True)]
    t0 = next(p[0] for p in parts if p[1].size)
    w = np.concatenate([p[1] for p in parts])
    grid = t0 + np.arange(w.size) / 4.0
    np.testing.assert_allclose(w, np.interp(grid, t, v), atol=1e-12)


def test_rsa_rate_offline_and_causal():
    for bpm in (8.0, 15.0):
        rr = rsa_series(rate_bpm=bpm)
        for causal in (False, True):
            a = analyze_rr(rr, causal=causal)
            assert abs(np.nanmedian(a.rate_bpm[60:]) - bpm) < 1.0, (bpm, causal)


def test_real_polar_h10_rr_is_plausible():
    path = DATA / "recordings" / "polar_h10_dhyb_ibi_unreferenced" / "sample_data_ibi.csv"
    rr = np.loadtxt(path, delimiter=",")[:, 1]
    a = analyze_rr(rr)
    assert 4.0 < np.nanmedian(a.rate_bpm) < 12.0  # slow breathing seen in the RSA; no reference
