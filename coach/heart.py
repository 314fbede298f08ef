"""Heart rate and short-term heart rate variability from RR intervals.

RMSSD (root mean square of successive RR differences) over the last
:data:`RMSSD_WINDOW_S` seconds of artifact-corrected beats (ectopic, missed and extra
beats corrected by :class:`coach.rr.RRCleaner`, the same series the breathing uses).

References
----------
Task Force of the ESC and NASPE. Heart rate variability: standards of measurement,
physiological interpretation and clinical use. Circulation 93:1043-1065, 1996.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from coach.config import HR_WINDOW_BEATS, RMSSD_WINDOW_S
from coach.types import HeartRate

MAX_BEATS = 400  # bounded memory: > RMSSD_WINDOW_S at 200 bpm


def rmssd_ms(rr_ms: np.ndarray) -> float | None:
    """RMSSD of artifact-corrected RR intervals; None with fewer than 10."""
    rr = np.asarray(rr_ms, dtype=float)
    if len(rr) < 10:
        return None
    return float(math.sqrt(np.mean(np.diff(rr) ** 2)))


def _since(beats: deque[tuple[float, float]], t0_s: float) -> list[tuple[float, float]]:
    """The beats at or after ``t0_s``, oldest first (beats arrive in time order)."""
    out = []
    for beat in reversed(beats):
        if beat[0] < t0_s:
            break
        out.append(beat)
    out.reverse()
    return out


class HeartTracker:
    """Keeps the recent beats of one person."""

    def __init__(self) -> None:
        self._beats: deque[tuple[float, float]] = deque(maxlen=MAX_BEATS)  # as reported
        self._clean: deque[tuple[float, float]] = deque(maxlen=MAX_BEATS)  # corrected
        self._strap_hr: float | None = None
        self._hr: tuple[int, float | None] | None = None  # (beats, hr_bpm) since the last push

    def push(self, event: HeartRate, corrected: list[tuple[float, float]]) -> None:
        """A notification, and the beats artifact correction released meanwhile.

        Heart rate follows the reported beats at once; RMSSD, RSA, coherence and the
        arousal alert use the corrected series (coach.rr.RRCleaner, Lipponen & Tarvainen 2019).
        """
        self._beats.extend(zip(event.beat_t_s, event.rr_ms, strict=True))
        self._hr = None
        self._clean.extend(corrected)
        if math.isfinite(event.hr_bpm) and event.hr_bpm > 0:
            self._strap_hr = event.hr_bpm

    def hr_bpm(self, beats: int = HR_WINDOW_BEATS) -> float | None:
        """Mean heart rate over the last ``beats`` beats (the strap's own value without RR)."""
        if self._hr is not None and self._hr[0] == beats:
            return self._hr[1]  # asked ten times a second, changed once a second
        hr = self._strap_hr
        if len(self._beats) >= 2:
            rr = np.array([r for _, r in itertools.islice(
                self._beats, max(0, len(self._beats) - beats), None)])
            hr = 60000.0 / float(np.mean(rr))
        self._hr = (beats, hr)
        return hr

    def hr_recent_bpm(self, t_s: float, window_s: float) -> float | None:
        """Mean heart rate over the corrected beats of the last ``window_s`` seconds.

        The corrected series (two beats late) merges a spurious extra beat and splits a
        missed one, so one artefact cannot move it by more than a normal beat does.
        """
        rr = [r for _, r in _since(self._clean, t_s - window_s)]
        return 60000.0 / float(np.mean(rr)) if len(rr) >= 2 else None

    def rmssd_ms(self, t_s: float) -> float | None:
        return rmssd_ms(np.array([r for _, r in _since(self._clean, t_s - RMSSD_WINDOW_S)]))

    def last_beat_s(self) -> float | None:
        return self._beats[-1][0] if self._beats else None

    def hr_series(self, t_s: float, window_s: float, fs_hz: float = 4.0) -> np.ndarray | None:
        """Instantaneous heart rate (bpm) resampled at ``fs_hz`` over the last ``window_s``.

        None unless beats cover at least 90 % of the window.
        """
        beats = _since(self._clean, t_s - window_s - 5.0)
        if len(beats) < 10:
            return None
        bt, rr = np.array(beats).T
        start = t_s - window_s
        if len(bt) < 10 or bt[0] > start + 0.1 * window_s or bt[-1] < t_s - 0.1 * window_s:
            return None
        grid = start + np.arange(int(window_s * fs_hz)) / fs_hz
        return np.interp(grid, bt, 60000.0 / rr)

    def rsa_bpm(self, t_s: float, onsets_s: Sequence[float],
                window_s: float = 60.0) -> float | None:
        """Respiratory sinus arrhythmia at the breathing frequency, peak to valley per breath.

        For each full breath of the last ``window_s`` seconds (from one inhale onset to
        the next), the highest minus the lowest beat-to-beat heart rate of the corrected
        beats within it (0 if it has fewer than two beats' worth of swing), averaged over
        the breaths (Grossman et al. 1990). Unlike the spread of heart rate over a wide
        band, it follows each breath, so slower rhythms (Mayer waves near 0.1 Hz) spread
        over several breaths weigh little. None with fewer than three full breaths.

        References
        ----------
        Grossman P, van Beek J, Wientjes C. A comparison of three quantification methods
        for estimation of respiratory sinus arrhythmia. Psychophysiology 27(6):702-714,
        1990.
        """
        on = [o for o in onsets_s if t_s - window_s <= o <= t_s]
        beats = _since(self._clean, t_s - window_s - 2.0)
        if len(on) < 4 or len(beats) < 10:
            return None
        bt, rr = np.array(beats).T
        hr = 60000.0 / rr
        swings = []
        for start, end in itertools.pairwise(on):
            inside = hr[(bt >= start) & (bt < end)]
            if len(inside) >= 2:
                swings.append(float(inside.max() - inside.min()))
        return float(np.mean(swings)) if len(swings) >= 3 else None
