"""R-R artifact correction and RSA breathing."""

import os
from pathlib import Path

import numpy as np

from coach import rr as rr_mod
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


def _classify_plainly(rr: np.ndarray, j: int) -> str:
    """Lipponen & Tarvainen's decision rules for interval j, with numpy's own statistics."""
    drr = np.diff(rr, prepend=rr[0])
    def qd(v: np.ndarray) -> float:
        return rr_mod.ALPHA * (np.percentile(np.abs(v), 75) - np.percentile(np.abs(v), 25)) / 2
    th1 = qd(drr[1:]) or 1.0
    med = np.median(rr[max(0, j - 10) : j + 1])
    mrr = rr - np.median(rr)
    th2 = qd(np.where(mrr < 0, 2 * mrr, mrr)) or 1.0
    m = rr[j] - med
    m = (2 * m if m < 0 else m) / th2
    d = drr / th1
    if abs(d[j]) <= 1 and abs(m) <= 3:
        return "normal"
    s12 = max(d[j - 1], d[j + 1]) if d[j] > 0 else min(d[j - 1], d[j + 1])
    if (d[j] > 1 and s12 < -rr_mod.C1 * d[j] - rr_mod.C2) or (
            d[j] < -1 and s12 > -rr_mod.C1 * d[j] + rr_mod.C2):
        return "ectopic"
    s22 = min(d[j + 1], d[j + 2]) if d[j] >= 0 else max(d[j + 1], d[j + 2])
    long_, short = d[j] > 1 and s22 < -1, d[j] < -1 and s22 > 1
    if not (long_ or short or abs(m) > 3):
        return "normal"
    if short and abs(rr[j] + rr[j + 1] - med) < th2:
        return "extra"
    if long_ and abs(rr[j] / 2 - med) < th2:
        return "missed"
    return "longshort"


def test_classes_follow_the_published_rules() -> None:
    rng = np.random.default_rng(11)
    seen = set()
    for _ in range(300):
        rr = 900 + rng.normal(0, 25, int(rng.integers(8, 92)))
        k = int(rng.integers(1, rr.size - 3))
        kind = rng.choice(["ectopic", "missed", "extra", "long", "none"])
        if kind == "ectopic":
            rr[k], rr[k + 1] = rr[k] * 0.7, rr[k + 1] * 1.3
        elif kind == "missed":
            rr[k] *= 2
        elif kind == "extra":
            rr[k], rr[k + 1] = rr[k] * 0.4, rr[k + 1] * 0.6
        elif kind == "long":
            rr[k] *= 1.4
        for j in range(1, rr.size - 2):
            want = _classify_plainly(rr, j)
            assert rr_mod._classify(rr, j) == want, (kind, j)
            seen.add(want)
    assert seen == {"normal", "ectopic", "missed", "extra", "longshort"}
