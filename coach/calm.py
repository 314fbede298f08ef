"""Calm score in [0, 1]: a first, population-based version.

Three components, each mapped linearly onto [0, 1] and clipped, then averaged over the
ones that are known, and smoothed with a time constant of :data:`CALM_TAU_S`:

- breathing rate: 1 at 6/min or slower, 0 at 20/min or faster;
- heart rate: 1 at 55 bpm or lower, 0 at 100 bpm or higher;
- RMSSD: 0 at 10 ms or lower, 1 at 80 ms or higher (on a log scale).

Slow breathing, a low heart rate and high vagal HRV go with calm (Laborde et al. 2017).
Later versions score against each person's own baseline instead of these ranges.

References
----------
Laborde S, Mosley E, Thayer JF. Heart rate variability and cardiac vagal tone in
psychophysiological research. Front Psychol 8:213, 2017.
"""

from __future__ import annotations

import math

from coach.config import CALM_TAU_S


def _unit(x: float, zero: float, one: float) -> float:
    return min(max((x - zero) / (one - zero), 0.0), 1.0)


def calm_components(
    rate_bpm: float | None, hr_bpm: float | None, rmssd_ms: float | None
) -> list[float]:
    """The known components of the calm score, each in [0, 1]."""
    parts = []
    if rate_bpm is not None:
        parts.append(_unit(rate_bpm, 20.0, 6.0))
    if hr_bpm is not None:
        parts.append(_unit(hr_bpm, 100.0, 55.0))
    if rmssd_ms is not None and rmssd_ms > 0:
        parts.append(_unit(math.log(rmssd_ms), math.log(10.0), math.log(80.0)))
    return parts


class CalmScore:
    """Smoothed calm score of one person; None until breathing and heart are known."""

    def __init__(self, tau_s: float = CALM_TAU_S) -> None:
        self.tau_s = tau_s
        self.value: float | None = None
        self._t: float | None = None

    def update(
        self, t_s: float, rate_bpm: float | None, hr_bpm: float | None, rmssd_ms: float | None
    ) -> float | None:
        parts = calm_components(rate_bpm, hr_bpm, rmssd_ms)
        if len(parts) < 2:
            return self.value
        raw = sum(parts) / len(parts)
        if self.value is None or self._t is None:
            self.value = raw
        else:
            alpha = 1.0 - math.exp(-max(t_s - self._t, 0.0) / self.tau_s)
            self.value += alpha * (raw - self.value)
        self._t = t_s
        return self.value
