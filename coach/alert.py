"""Arousal alert: a sharp rise that leaves the window of tolerance.

Set when, for :data:`ALERT_CONFIRM_S` seconds, heart rate (mean over the last
:data:`ALERT_HR_WINDOW_S` seconds, long enough to average out the swing of one breath
or a sigh)
is at least :data:`ALERT_RISE_BPM` above its *reference*: the median heart rate between
60 and 20 seconds earlier. A sharp rise trips it; a slow drift over minutes does not,
because the reference drifts along. Breathing that speeds up by 4/min or more over the
same reference, with heart rate up by at least half the threshold, also trips it.

Cleared, with hysteresis, once heart rate has stayed within :data:`ALERT_CLEAR_BPM` of
the reference frozen at the moment the alert was set for :data:`ALERT_CLEAR_S`
seconds. While any partner's alert is set, the pacer holds its pace: the coach stops
pushing and the dashboard tells the therapist.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from typing import Final

import numpy as np

from coach.respiration import median_of_sorted

ALERT_RISE_BPM: Final = 10.0  # heart-rate rise that counts as sharp, bpm
ALERT_RATE_RISE_BPM: Final = 4.0  # breathing-rate rise that counts, breaths/min
ALERT_CONFIRM_S: Final = 1.0  # seconds the rise must last
ALERT_HR_WINDOW_S: Final = 5.0  # seconds of beats averaged for the heart rate watched
ALERT_CLEAR_BPM: Final = 5.0  # back within this of the reference, bpm
ALERT_CLEAR_S: Final = 15.0  # for this long, seconds
REFERENCE_FROM_S: Final = 60.0
REFERENCE_TO_S: Final = 20.0


class ArousalAlert:
    """The alert state of one person, updated about once a second or more often."""

    def __init__(self) -> None:
        self.active = False
        self.count = 0
        self._history: deque[tuple[float, float, float | None]] = deque(maxlen=1200)
        self._since: float | None = None
        self._frozen_ref: float | None = None

    def _reference(self, t_s: float) -> tuple[float | None, float | None]:
        # the history's times increase: find the reference span by bisection
        lo = bisect.bisect_left(self._history, t_s - REFERENCE_FROM_S, key=lambda h: h[0])
        hi = bisect.bisect_right(self._history, t_s - REFERENCE_TO_S, key=lambda h: h[0])
        window = [(h, r) for _, h, r in itertools.islice(self._history, lo, hi)]
        if len(window) < 10:
            return None, None
        rates = [r for _, r in window if r is not None]
        return median_of_sorted(np.sort([h for h, _ in window])), (
            median_of_sorted(np.sort(rates)) if rates else None
        )

    def update(self, t_s: float, hr_bpm: float | None, rate_bpm: float | None) -> bool:
        """Take the latest heart and breathing rates; evaluated at most twice a second."""
        if hr_bpm is None or (self._history and t_s - self._history[-1][0] < 0.5):
            return self.active
        self._history.append((t_s, hr_bpm, rate_bpm))
        if self.active:
            self._maybe_clear(t_s, hr_bpm)
        else:
            self._maybe_set(t_s, hr_bpm, rate_bpm)
        return self.active

    def _maybe_set(self, t_s: float, hr: float, rate: float | None) -> None:
        ref_hr, ref_rate = self._reference(t_s)
        if ref_hr is None:
            return
        rise = hr - ref_hr
        fast_breath = rate is not None and ref_rate is not None and (
            rate - ref_rate >= ALERT_RATE_RISE_BPM and rise >= ALERT_RISE_BPM / 2
        )
        if rise >= ALERT_RISE_BPM or fast_breath:
            if self._since is None:
                self._since = t_s
            if t_s - self._since >= ALERT_CONFIRM_S:
                self.active, self.count = True, self.count + 1
                self._frozen_ref, self._since = ref_hr, None
        else:
            self._since = None

    def _maybe_clear(self, t_s: float, hr: float) -> None:
        assert self._frozen_ref is not None
        if hr - self._frozen_ref <= ALERT_CLEAR_BPM:
            if self._since is None:
                self._since = t_s
            if t_s - self._since >= ALERT_CLEAR_S:
                self.active, self._since, self._frozen_ref = False, None, None
        else:
            self._since = None
