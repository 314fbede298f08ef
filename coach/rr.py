"""R-R intervals: artifact correction and the RSA breathing wave.

Heart rate rises on inhalation and falls on exhalation (respiratory sinus
arrhythmia), a few hundred milliseconds to seconds behind the breath. The RSA wave is
the instantaneous heart rate at each interval's midpoint, moved earlier by
:data:`RSA_LAG_S`, resampled to a regular grid and then handled by
:mod:`coach.respiration` like any breathing wave.

One implementation serves both modes: :class:`RRCleaner` classifies each interval
once two later intervals are known (causal, two beats late), with thresholds from
the trailing 91 intervals; offline analysis runs the same cleaner over the whole
series.

References
----------
.. [1] Lipponen JA, Tarvainen MP. A robust algorithm for heart rate variability time
   series artefact correction using novel beat classification. J Med Eng Technol.
   2019;43(3):173-181.
.. [2] Schäfer A, Kratky KW. Estimation of breathing rate from respiratory sinus
   arrhythmia: comparison of various methods. Ann Biomed Eng. 2008;36(3):476-485.
.. [3] Berntson GG, Cacioppo JT, Quigley KS. Respiratory sinus arrhythmia: autonomic
   origins, physiological mechanisms, and psychophysiological implications.
   Psychophysiology. 1993;30(2):183-196.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

import numpy as np

from coach.respiration import WAVE_FS_HZ, quantile_of_sorted

RR_MIN_MS: Final = 270.0  # ms, 222 beats/min: shorter intervals are not beats
RR_MAX_MS: Final = 2500.0  # ms, 24 beats/min
RSA_LAG_S: Final = 0.0  # s, heart-rate peak after end of inspiration, see docs/breathing.md
ALPHA: Final = 5.2  # threshold multiplier of the quartile deviation [1]
C1: Final = 0.13  # ectopic decision boundary slope [1]
C2: Final = 0.17  # ectopic decision boundary offset [1]
WINDOW_BEATS: Final = 91  # intervals for the thresholds [1]
MEDIAN_BEATS: Final = 11  # intervals for the local median [1]


def _qd_threshold(x: np.ndarray) -> float:
    s = np.sort(np.abs(x))
    return ALPHA * (quantile_of_sorted(s, 0.75) - quantile_of_sorted(s, 0.25)) / 2.0


def _classify(rr: np.ndarray, j: int) -> str:
    """Class of interval ``j`` of ``rr`` (needs ``rr[j+2]``) after Lipponen & Tarvainen [1]_.

    Returns "normal", "ectopic", "longshort", "missed" or "extra". Thresholds come
    from all of ``rr``, the caller's window.
    """
    step = rr[1:] - rr[:-1]  # successive differences; the first interval has none (0)
    th1 = _qd_threshold(step) or 1.0
    med = quantile_of_sorted(np.sort(rr[max(0, j - MEDIAN_BEATS + 1) : j + 1]), 0.5)
    mrr_all = rr - quantile_of_sorted(np.sort(rr), 0.5)
    mrr_all = np.where(mrr_all < 0, 2 * mrr_all, mrr_all)
    th2 = _qd_threshold(mrr_all) or 1.0
    r = rr[j : j + 2].tolist()
    m = r[0] - med
    m = (2 * m if m < 0 else m) / th2
    # normalised differences d[j - 1] .. d[j + 2] (d[0] = 0), as Python floats
    near = step[max(j - 2, 0) : j + 2].tolist()
    d0, d1, d2, d3 = (v / th1 for v in (near if j >= 2 else [0.0, *near]))
    if abs(d1) <= 1 and abs(m) <= 3:
        return "normal"
    s12 = max(d0, d2) if d1 > 0 else min(d0, d2)
    if (d1 > 1 and s12 < -C1 * d1 - C2) or (d1 < -1 and s12 > -C1 * d1 + C2):
        return "ectopic"
    s22 = min(d2, d3) if d1 >= 0 else max(d2, d3)
    long_ = d1 > 1 and s22 < -1
    short = d1 < -1 and s22 > 1
    if not (long_ or short or abs(m) > 3):
        return "normal"
    if short and abs(r[0] + r[1] - med) < th2:
        return "extra"
    if long_ and abs(r[0] / 2 - med) < th2:
        return "missed"
    return "longshort"


class RRCleaner:
    """Causal R-R artifact correction [1]_, two beats late, bounded memory.

    Feed ``(beat_t_s, rr_ms)`` pairs; get corrected pairs back: ectopic and long/short
    intervals take the local median, a missed beat is split in two, an extra beat is
    merged into the next interval. Physiologically impossible intervals are dropped.
    """

    def __init__(self) -> None:
        self._beats: deque[list[float]] = deque(maxlen=WINDOW_BEATS)
        self._pending = 0  # beats at the end of the deque not yet classified
        self.counts: dict[str, int] = {}

    def push(self, beat_t_s: float, rr_ms: float) -> list[tuple[float, float]]:
        if not RR_MIN_MS / 2 <= rr_ms <= 2 * RR_MAX_MS:
            return []
        self._beats.append([beat_t_s, rr_ms])
        self._pending += 1
        out: list[tuple[float, float]] = []
        while self._pending > 2 and len(self._beats) >= 4:
            out += self._decide(len(self._beats) - self._pending)
            self._pending -= 1
        return out

    def flush(self) -> list[tuple[float, float]]:
        """The last beats, passed through unclassified (end of a recording)."""
        tail = list(self._beats)[len(self._beats) - self._pending :] if self._pending else []
        self._pending = 0
        return [(t, r) for t, r in tail if RR_MIN_MS <= r <= RR_MAX_MS]

    def _decide(self, j: int) -> list[tuple[float, float]]:
        rr = np.array([b[1] for b in self._beats])
        kind = _classify(rr, j) if j >= 1 else "normal"
        self.counts[kind] = self.counts.get(kind, 0) + 1
        t, r = self._beats[j]
        if kind in ("ectopic", "longshort"):
            r = float(np.median(rr[max(0, j - MEDIAN_BEATS + 1) : j + 3]))
            self._beats[j][1] = r
        elif kind == "missed":
            self._beats[j][1] = r / 2
            return [(t - r / 2, r / 2), (t, r / 2)]
        elif kind == "extra":
            self._beats[j + 1][1] += r
            return []
        return [(t, r)] if RR_MIN_MS <= r <= RR_MAX_MS else []


def rr_clean(beat_t_s: np.ndarray, rr_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offline artifact correction: the causal cleaner over a whole series [1]_."""
    cleaner = RRCleaner()
    out: list[tuple[float, float]] = []
    for t, r in zip(np.asarray(beat_t_s).tolist(), np.asarray(rr_ms).tolist(), strict=True):
        out += cleaner.push(t, r)
    out += cleaner.flush()
    arr = np.array(out, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def rr_beat_times(rr_ms: np.ndarray, t0_s: float = 0.0) -> np.ndarray:
    """Beat times of a bare R-R series: each interval ends at the running sum."""
    return t0_s + np.cumsum(np.asarray(rr_ms, dtype=np.float64)) / 1000.0


def rsa_points(beat_t_s: np.ndarray, rr_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heart rate (beats/min) at interval midpoints, moved earlier by the RSA lag [2]_[3]_."""
    rr = np.asarray(rr_ms, dtype=np.float64)
    return np.asarray(beat_t_s) - rr / 2000.0 - RSA_LAG_S, 60000.0 / rr


class BeatResampler:
    """Causal linear resampling of an irregular beat series onto a regular grid.

    Emits every grid sample up to the newest point; offline, ``np.interp`` on the
    same grid gives the same values.
    """

    def __init__(self, fs_hz: float = WAVE_FS_HZ) -> None:
        self.fs_hz = fs_hz
        self._prev: tuple[float, float] | None = None
        self._next_t: float | None = None

    def push(self, t_s: float, value: float) -> tuple[float, np.ndarray]:
        """Add a point; return (time of the first new sample, new samples)."""
        if self._prev is None or t_s <= self._prev[0]:
            if self._prev is None:
                self._next_t = math.ceil(t_s * self.fs_hz) / self.fs_hz
                self._prev = (t_s, value)
            return (self._next_t or 0.0), np.empty(0)
        assert self._next_t is not None
        n = math.floor((t_s - self._next_t) * self.fs_hz + 1e-9) + 1
        grid = self._next_t + np.arange(max(n, 0)) / self.fs_hz
        vals = np.interp(grid, [self._prev[0], t_s], [self._prev[1], value])
        t_first = self._next_t
        self._next_t = t_first + max(n, 0) / self.fs_hz
        self._prev = (t_s, value)
        return t_first, vals


def beats_to_wave(
    t_s: np.ndarray, values: np.ndarray, fs_hz: float = WAVE_FS_HZ
) -> tuple[float, np.ndarray]:
    """Offline resampling of a beat series: (time of first sample, samples)."""
    t = np.asarray(t_s, dtype=np.float64)
    if t.size < 2:
        return 0.0, np.empty(0)
    t0 = math.ceil(t[0] * fs_hz) / fs_hz
    grid = np.arange(t0, t[-1] + 1e-9, 1.0 / fs_hz)
    return t0, np.interp(grid, t, values)
