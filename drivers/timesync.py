"""Mapping strap clocks to host time.

Polar straps stamp each PMD frame with the device time of its last sample (ns since
2000-01-01, on the strap's own crystal). A frame can only arrive *after* the moment
its timestamp names, so every observation (device time x, arrival y) lies on or above
the true mapping line; the line is recovered as the lower support line of the points
that lies closest to them on average (the linear-programming skew estimator of Moon,
Skelly and Towsley). It fits offset and drift together, online, over a sliding window.

Plain heart-rate straps have no clock: the RR intervals of a notification end at
(shortly before) its arrival. :class:`BeatDater` chains the intervals into a clock of
their own and anchors that chain to the earliest-arriving notifications in the same
min-latency spirit, keeping beat times monotonic.

References
----------
S. B. Moon, P. Skelly, D. Towsley, "Estimation and removal of clock skew from network
delay measurements", Proc. IEEE INFOCOM 1999, pp. 227-234.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence

import numpy as np


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def lower_hull(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Lower convex hull of points sorted by x (Andrew's monotone chain)."""
    hull: list[tuple[float, float]] = []
    for p in points:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) <= 0:
            hull.pop()
        hull.append(p)
    return hull


def min_latency_line(
    points: Sequence[tuple[float, float]], max_slope: float
) -> tuple[float, float]:
    """Intercept and slope of the line below all points, closest to them on average.

    The optimum passes along the lower hull edge above the mean x (Moon et al. 1999);
    the slope is clamped to ``[-max_slope, max_slope]`` and the intercept lowered so
    the line stays below every point.
    """
    pts = sorted(points)
    hull = lower_hull(pts)
    slope = 0.0
    if len(hull) >= 2:
        x_mean = sum(p[0] for p in pts) / len(pts)
        for p, q in itertools.pairwise(hull):
            slope = (q[1] - p[1]) / (q[0] - p[0]) if q[0] > p[0] else 0.0
            if q[0] >= x_mean:
                break
    slope = min(max(slope, -max_slope), max_slope)
    intercept = min(y - slope * x for x, y in pts)
    return intercept, slope


class DeviceClock:
    """Online map from a strap's clock (ns) to host monotonic seconds.

    Parameters
    ----------
    window_s : float
        Device seconds of history the fit uses (older observations are dropped).
    bin_s : float
        Only the earliest-arriving observation per bin is kept.
    max_drift_ppm : float
        Largest clock drift believed; crystals are within about +-100 ppm.
    jump_s : float
        A device clock that runs back, or an arrival earlier than the fit allows by more
        than this, means the strap reset its clock: the fit starts over.
    """

    def __init__(self, window_s: float = 600.0, bin_s: float = 1.0,
                 max_drift_ppm: float = 500.0, jump_s: float = 1.0) -> None:
        self.window_s, self.bin_s, self.jump_s = window_s, bin_s, jump_s
        self.max_slope = max_drift_ppm * 1e-6
        self.resets = 0
        self._ref_ns: int | None = None
        self._bins: dict[int, tuple[float, float]] = {}
        self._last_x = -math.inf
        self._fit: tuple[float, float] | None = None

    @property
    def ready(self) -> bool:
        """True once at least one observation has been made."""
        return self._ref_ns is not None

    def observe(self, device_ns: int, arrival_s: float) -> None:
        """Record that a frame stamped ``device_ns`` arrived at host time ``arrival_s``."""
        if self._ref_ns is None:
            self._ref_ns = device_ns
        x = (device_ns - self._ref_ns) / 1e9
        y = arrival_s - x
        if self._fit is not None and (
            x < self._last_x - self.jump_s or y < self._line(x) - self.jump_s
        ):
            self.reset()
            self.resets += 1
            self.observe(device_ns, arrival_s)
            return
        self._last_x = max(self._last_x, x)
        key = math.floor(x / self.bin_s)
        old = self._bins.get(key)
        if old is None or y < old[1]:
            self._bins[key] = (x, y)
            self._prune(key)
            self._fit = min_latency_line(list(self._bins.values()), self.max_slope)

    def _prune(self, newest: int) -> None:
        oldest = newest - math.ceil(self.window_s / self.bin_s)
        for k in [k for k in self._bins if k < oldest]:
            del self._bins[k]

    def _line(self, x: float) -> float:
        assert self._fit is not None
        return self._fit[0] + self._fit[1] * x

    def to_host(self, device_ns: int) -> float:
        """Host time of a device timestamp (requires :attr:`ready`)."""
        if self._ref_ns is None or self._fit is None:
            raise RuntimeError("no observation yet")
        x = (device_ns - self._ref_ns) / 1e9
        return x + self._line(x)

    @property
    def drift_ppm(self) -> float:
        """Estimated rate of the host clock relative to the device's, minus one, in ppm."""
        return 0.0 if self._fit is None else self._fit[1] * 1e6

    def reset(self) -> None:
        """Forget every observation (the device clock is not to be trusted any more)."""
        self._ref_ns, self._fit, self._last_x = None, None, -math.inf
        self._bins.clear()


class BeatDater:
    """Host times of beats from RR intervals whose last beat precedes the arrival.

    The intervals are chained into an RR clock; its offset to host time is the minimum
    of (arrival - chain end) over the recent notifications, because a notification can
    only arrive after its last beat. A chain end later than the arrival lowers the
    offset at once; lost beats (the chain falls behind by more than ``gap_s``)
    re-anchor it. Beat times never go backwards.

    Parameters
    ----------
    window_s : float
        Host seconds of notifications the minimum runs over.
    gap_s : float
        Apparent latency above which beats are taken as lost and the chain re-anchored.
    """

    def __init__(self, window_s: float = 60.0, gap_s: float = 1.1) -> None:
        self.window_s, self.gap_s = window_s, gap_s
        self._chain_s = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (arrival, arrival - chain end)
        self._last_beat_s = -math.inf

    def date(self, rr_ms: Sequence[float], arrival_s: float) -> tuple[float, ...]:
        """Host time of the beat ending each interval of one notification."""
        if not rr_ms:
            return ()
        ends = self._chain_s + np.cumsum(np.asarray(rr_ms, dtype=float)) / 1000.0
        self._chain_s = float(ends[-1])
        d = arrival_s - self._chain_s
        while self._recent and self._recent[0][0] < arrival_s - self.window_s:
            self._recent.popleft()
        if self._recent and d - min(r[1] for r in self._recent) > self.gap_s:
            self._recent.clear()  # beats went missing: the old anchor is stale
        self._recent.append((arrival_s, d))
        offset = min(r[1] for r in self._recent)
        beats = ends + offset
        floor = self._last_beat_s + 1e-3 * np.arange(1, len(beats) + 1)
        beats = np.maximum(beats, floor)  # monotonic even when the anchor moves back
        self._last_beat_s = float(beats[-1])
        return tuple(float(b) for b in beats)

    def reset(self) -> None:
        """Forget the anchor (after a reconnect) but keep beats monotonic."""
        self._recent.clear()
