"""Synchrony between the partners, and how much of it the orb alone explains.

Sampled once a second, over a sliding window of :data:`SYNC_WINDOW_S` seconds:

- ``breath_plv``: phase locking value of the partners' breathing,
  ``|mean(exp(i(phi_A - phi_B)))|`` (1 = constant phase relation, 0 = none).
- ``orb_plv``: the same for each partner against the orb.
- ``breath_plv_baseline``: the PLV a *pseudo-couple* reaches: A's phase relative to the
  orb now, against B's phase relative to the orb :data:`PSEUDO_OFFSETS_S` earlier (up to
  four minutes back, averaged; before that much history exists, B's window cut into
  :data:`SEGMENT_S` segments and shuffled). Two people who each follow the orb keep their
  orb-relative phases all along, so this baseline is as high as their real PLV: the
  orb explains it. Two people attuned to each other keep their relation only at the
  same moments, so the pseudo-couple loses it and the real PLV stands above the baseline.
- ``hr_xcorr``: the highest Pearson correlation of the partners' heart rates over lags
  of up to +-:data:`MAX_LAG_S` seconds; ``hr_xcorr_baseline``: the same with B's heart
  rate segment-shuffled.
- The whole session: means of each figure over every full window, and the share of
  windows in which breath synchrony stood more than :data:`BEYOND_MARGIN` above its
  baseline.

References
----------
Lachaux JP, Rodriguez E, Martinerie J, Varela FJ. Measuring phase synchrony in brain
signals. Hum Brain Mapp 8:194-208, 1999 (phase locking value).
Boker SM, Xu M, Rotondo JL, King K. Windowed cross-correlation and peak picking for the
analysis of variability in the association between behavioral time series. Psychol
Methods 7(3):338-355, 2002.
Moulder RG, Boker SM, Ramseyer F, Tschacher W. Determining synchrony between behavioral
time series: an application of surrogate data generation for establishing falsifiable
null-hypotheses. Psychol Methods 23(4):757-773, 2018 (segment shuffling).
"""

from __future__ import annotations

import functools
import math
from collections import deque
from typing import Any, Final

import numpy as np

SYNC_WINDOW_S: Final = 60  # seconds (samples at 1 Hz)
SEGMENT_S: Final = 10  # seconds per shuffled segment
SURROGATES: Final = 20
MAX_LAG_S: Final = 5  # seconds
BEYOND_MARGIN: Final = 0.1  # PLV above baseline that counts as "beyond the orb"
PSEUDO_OFFSETS_S: Final = tuple(range(30, 241, 15))  # seconds back for the pseudo-couple
HISTORY_S: Final = SYNC_WINDOW_S + max(PSEUDO_OFFSETS_S)


def plv(phase_diff: np.ndarray) -> float:
    """Phase locking value of a series of phase differences (radians)."""
    return float(abs(np.mean(np.exp(1j * phase_diff))))


def plvs(phase_diffs: np.ndarray) -> np.ndarray:
    """:func:`plv` of each row."""
    return np.abs(np.mean(np.exp(1j * phase_diffs), axis=1))


def lagged_xcorrs(x: np.ndarray, ys: np.ndarray, max_lag: int) -> np.ndarray:
    """Highest correlation of ``x`` with each row of ``ys`` shifted by up to ``max_lag``
    samples (NaN where undefined: a flat series, or too short).

    Both series are standardised over the whole window, and the correlation at each lag
    is the mean product over the overlapping samples (the usual windowed
    cross-correlation estimate; Boker et al. 2002).
    """
    n = len(x)
    out = np.full(len(ys), math.nan)
    sx, sy = float(np.std(x)), ys.std(axis=1)
    if n < 2 * max_lag + 10 or sx == 0:
        return out
    xz = (x - x.mean()) / sx
    yz = (ys - ys.mean(axis=1, keepdims=True)) / np.where(sy == 0, 1.0, sy)[:, None]
    shift, overlap = _lags(n, max_lag)
    best = np.max((yz @ np.append(xz, 0.0)[shift]) / overlap, axis=1)
    return np.where(sy == 0, math.nan, best)


@functools.lru_cache(maxsize=4)
def _lags(n: int, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, lags) of x shifted by each lag (n = a zero outside), and overlaps."""
    lags = np.arange(-max_lag, max_lag + 1)
    i = np.arange(n)[:, None] + lags[None, :]
    return np.where((i >= 0) & (i < n), i, n), n - np.abs(lags)


def _shuffles(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index permutations that shuffle whole segments of a series of length n."""
    segments = [np.arange(i, min(i + SEGMENT_S, n)) for i in range(0, n, SEGMENT_S)]
    out = []
    for _ in range(SURROGATES):
        order = rng.permutation(len(segments))
        if len(segments) > 1 and np.all(order == np.arange(len(segments))):
            order = np.roll(order, 1)
        out.append(np.concatenate([segments[k] for k in order]))
    return out


class Synchrony:
    """Live and whole-session synchrony of partners A and B, and of each with the orb."""

    def __init__(self, seed: int = 0) -> None:
        self._rows: deque[tuple[float, ...]] = deque(maxlen=SYNC_WINDOW_S)
        self._rel_b: deque[float] = deque(maxlen=HISTORY_S)  # B's orb-relative phase, no gaps
        self._orb_rows: dict[str, deque[float]] = {}
        self._shuffles = np.array(_shuffles(SYNC_WINDOW_S, np.random.default_rng(seed)))
        self._xcorr_rows = np.vstack([np.arange(SYNC_WINDOW_S), self._shuffles[:8]])
        self._sums: dict[str, float] = {}
        self._windows = 0
        self._beyond = 0
        self.latest: dict[str, Any] = {}

    def add(
        self,
        phases: dict[str, float | None],
        hrs: dict[str, float | None],
        orb_phase: float | None,
    ) -> dict[str, Any]:
        """Add one second of phases and heart rates by label; returns the current figures.

        Figures are None until a window of :data:`SYNC_WINDOW_S` seconds without gaps exists.
        """
        for label, phase in phases.items():
            rows = self._orb_rows.setdefault(label, deque(maxlen=SYNC_WINDOW_S))
            if phase is None or orb_phase is None:
                rows.clear()  # a gap: start the window again
            else:
                rows.append(phase - orb_phase)
        values = (phases.get("A"), phases.get("B"), orb_phase, hrs.get("A"), hrs.get("B"))
        if any(v is None for v in values):
            self._rows.clear()
            self._rel_b.clear()
        else:
            self._rows.append(tuple(float(v) for v in values))  # type: ignore[arg-type]
            self._rel_b.append(float(values[1]) - float(values[2]))  # type: ignore[arg-type]
        self.latest = self._compute()
        return self.latest

    def _compute(self) -> dict[str, Any]:
        out: dict[str, Any] = dict.fromkeys(
            ("breath_plv", "breath_plv_baseline", "hr_xcorr", "hr_xcorr_baseline"))
        out["orb_plv"] = {
            k: plv(np.array(v)) if len(v) == SYNC_WINDOW_S else None
            for k, v in self._orb_rows.items()
        }
        if len(self._rows) < SYNC_WINDOW_S:
            return out | {"session": self.session_summary()}
        a, b, orb, hr_a, hr_b = np.array(self._rows).T
        out["breath_plv"] = plv(a - b)
        out["breath_plv_baseline"] = self._pseudo_couple(a - orb, b - orb)
        ha, hb = hr_a - hr_a.mean(), hr_b - hr_b.mean()
        # the real pair, then B's heart rate segment-shuffled 8 times
        r = lagged_xcorrs(ha, hb[self._xcorr_rows], MAX_LAG_S)
        out["hr_xcorr"] = None if math.isnan(r[0]) else float(r[0])
        known = r[1:][~np.isnan(r[1:])]
        out["hr_xcorr_baseline"] = float(np.mean(known)) if known.size else None
        self._accumulate(out)
        return out | {"session": self.session_summary()}

    def _pseudo_couple(self, rel_a: np.ndarray, rel_b: np.ndarray) -> float:
        history = np.array(self._rel_b)
        n, w = len(history), SYNC_WINDOW_S
        shifted = [history[n - w - d : n - d] for d in PSEUDO_OFFSETS_S if n - w - d >= 0]
        if shifted:
            return float(np.mean(plvs(rel_a - np.array(shifted))))
        return float(np.mean(plvs(rel_a - rel_b[self._shuffles])))

    def _accumulate(self, out: dict[str, Any]) -> None:
        self._windows += 1
        for key in ("breath_plv", "breath_plv_baseline", "hr_xcorr", "hr_xcorr_baseline"):
            if out[key] is not None:
                self._sums[key] = self._sums.get(key, 0.0) + out[key]
        if out["breath_plv"] - out["breath_plv_baseline"] > BEYOND_MARGIN:
            self._beyond += 1

    def session_summary(self) -> dict[str, Any]:
        """Means over every full window so far, and the share beyond the orb."""
        if not self._windows:
            return {"windows": 0, "beyond_orb_share": None}
        means = {f"{k}_mean": round(v / self._windows, 4) for k, v in self._sums.items()}
        share = round(self._beyond / self._windows, 4)
        return {"windows": self._windows, "beyond_orb_share": share, **means}


def round_figures(fig: dict[str, Any], digits: int = 4) -> dict[str, Any]:
    """JSON-ready copy: floats rounded, NaN as None."""
    def fix(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, float):
            return round(v, digits) if math.isfinite(v) else None
        return v
    return fix(fig)
