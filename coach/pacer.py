"""The pacer: the orb's breathing, as a phase integrated from a rate.

The phase is a function of clock time, never of ticks: between updates it advances at
the current rate, and each update only changes the rate from that moment on, so the
orb can never jump. The rate moves toward its target no faster than the slew limit and
stays inside the bounds.
"""

from __future__ import annotations

import math

from coach.config import (
    PACER_IE_RATIO,
    PACER_MAX_BPM,
    PACER_MIN_BPM,
    PACER_SLEW_BPM_PER_MIN,
)
from coach.types import PacerState


class Pacer:
    """A continuous breathing pace that follows a target gently."""

    def __init__(
        self,
        t_s: float,
        rate_bpm: float,
        *,
        phase: float = 0.0,
        ie_ratio: float = PACER_IE_RATIO,
        slew_bpm_per_min: float = PACER_SLEW_BPM_PER_MIN,
        bounds_bpm: tuple[float, float] = (PACER_MIN_BPM, PACER_MAX_BPM),
    ) -> None:
        self.bounds_bpm = bounds_bpm
        self.slew_bpm_per_min = slew_bpm_per_min
        self.state = PacerState(t_s, phase % (2 * math.pi), self._clip(rate_bpm), ie_ratio)

    def _clip(self, rate_bpm: float) -> float:
        lo, hi = self.bounds_bpm
        return min(max(rate_bpm, lo), hi)

    def update(
        self,
        t_s: float,
        target_bpm: float | None,
        *,
        holding: bool = False,
        mode: str = "follow",
        ie_ratio: float | None = None,
        target_shown: float | None = None,
    ) -> PacerState:
        """Advance to ``t_s`` and steer toward ``target_bpm`` (None or holding: keep the rate).

        ``target_shown`` is published as the state's ``target_bpm`` (a fixed pace).
        """
        old = self.state
        dt = max(t_s - old.t0_s, 0.0)
        phase = old.phase_at(old.t0_s + dt)
        rate = old.rate_bpm
        if not holding and target_bpm is not None and math.isfinite(target_bpm):
            step = self.slew_bpm_per_min * dt / 60.0
            rate += min(max(self._clip(target_bpm) - rate, -step), step)
        self.state = PacerState(
            old.t0_s + dt,
            phase,
            self._clip(rate),
            old.ie_ratio if ie_ratio is None else ie_ratio,
            holding=holding,
            mode=mode,
            target_bpm=target_shown,
        )
        return self.state
