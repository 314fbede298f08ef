"""Calm score in [0, 1] per person: where they are, and where they are against their baseline.

``calm = 0.5 * norm + 0.5 * own``, smoothed with a time constant of :data:`CALM_TAU_S`,
and ``None`` until the person's baseline is known.

- ``norm`` places the person on ordinary adult ranges, each mapped linearly onto [0, 1]:
  breathing rate (1 at 6/min or slower, 0 at 20/min or faster), heart rate (1 at 55 bpm
  or lower, 0 at 100 bpm or higher), RMSSD (0 at 10 ms, 1 at 80 ms, log scale). It lets
  the anchor be the partner who is actually more regulated, not merely the one who has
  improved more.
- ``own`` compares with the person's own baseline (the first :data:`BASELINE_S` seconds,
  or a baseline the therapist starts): a weighted mean of logistic scores, 0.5 meaning
  "as at baseline": heart rate (weight 0.25, a 5 % rise lowers the score to 0.27),
  ln RMSSD (0.25, scale 0.3), breathing rate (0.2, a 15 % rise -> 0.27), breathing
  regularity (0.1, scale 0.1) and ln RSA amplitude (0.2, scale 0.3).

Slow, regular breathing, a lower heart rate, and higher vagally mediated HRV and RSA go
with calm (Laborde et al. 2017; Grossman & Taylor 2007).

References
----------
Laborde S, Mosley E, Thayer JF. Heart rate variability and cardiac vagal tone in
psychophysiological research. Front Psychol 8:213, 2017.
Grossman P, Taylor EW. Toward understanding respiratory sinus arrhythmia. Biol Psychol
74(2):263-285, 2007.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from coach.config import CALM_TAU_S

BASELINE_S = 120.0  # seconds of baseline by default

# (feature, weight, scale, higher_is_calmer, log): see the module docstring
_OWN_TERMS = (
    ("hr_bpm", 0.25, 0.05, False, False),
    ("rmssd_ms", 0.25, 0.3, True, True),
    ("rate_bpm", 0.2, 0.15, False, False),
    ("regularity", 0.1, 0.1, True, False),
    ("rsa_bpm", 0.2, 0.3, True, True),
)


@dataclass(frozen=True, slots=True)
class Features:
    """What the calm score is computed from; None = unknown."""

    hr_bpm: float | None = None
    rmssd_ms: float | None = None
    rate_bpm: float | None = None
    regularity: float | None = None
    rsa_bpm: float | None = None


def _unit(x: float, zero: float, one: float) -> float:
    return min(max((x - zero) / (one - zero), 0.0), 1.0)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def norm_score(f: Features) -> float | None:
    """Population part: mean of the known components (needs at least two)."""
    parts = []
    if f.rate_bpm is not None:
        parts.append(_unit(f.rate_bpm, 20.0, 6.0))
    if f.hr_bpm is not None:
        parts.append(_unit(f.hr_bpm, 100.0, 55.0))
    if f.rmssd_ms is not None and f.rmssd_ms > 0:
        parts.append(_unit(math.log(f.rmssd_ms), math.log(10.0), math.log(80.0)))
    return sum(parts) / len(parts) if len(parts) >= 2 else None


def own_score(f: Features, base: Features) -> float | None:
    """Baseline part: weighted logistic scores of the change from baseline."""
    total = weight_sum = 0.0
    for name, weight, scale, calmer_up, log in _OWN_TERMS:
        now, then = getattr(f, name), getattr(base, name)
        if now is None or then is None or (log and (now <= 0 or then <= 0)):
            continue
        if log:
            change = math.log(now / then)
        elif name == "regularity":
            change = now - then
        else:
            change = (now - then) / then
        total += weight * _sigmoid((change if calmer_up else -change) / scale)
        weight_sum += weight
    return total / weight_sum if weight_sum >= 0.4 else None


@dataclass
class Baseline:
    """Collects features over a baseline period; their medians are the baseline."""

    start_s: float
    duration_s: float = BASELINE_S
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, t_s: float, f: Features) -> None:
        if t_s < self.start_s or t_s > self.start_s + self.duration_s:
            return
        for name in Features.__slots__:
            value = getattr(f, name)
            if value is not None:
                self.samples.setdefault(name, []).append(value)

    def result(self, t_s: float) -> Features | None:
        """The baseline once its period is over and heart rate is known, else None."""
        if t_s < self.start_s + self.duration_s or len(self.samples.get("hr_bpm", [])) < 10:
            return None
        return Features(**{k: float(np.median(v)) for k, v in self.samples.items() if v})


class CalmScore:
    """Smoothed calm score of one person; None until their baseline is known."""

    def __init__(self, tau_s: float = CALM_TAU_S) -> None:
        self.tau_s = tau_s
        self.value: float | None = None
        self.baseline: Features | None = None
        self._collecting: Baseline | None = None  # the session starts the first baseline
        self._t: float | None = None

    def start_baseline(self, t_s: float, duration_s: float = BASELINE_S) -> None:
        """Measure a new baseline from ``t_s`` (the score keeps the old one meanwhile)."""
        self._collecting = Baseline(t_s, duration_s)

    def baseline_left_s(self, t_s: float) -> float | None:
        """Seconds left of the baseline being measured at ``t_s``; None when none is."""
        if self._collecting is None:
            return None
        return max(0.0, self._collecting.start_s + self._collecting.duration_s - t_s)

    def update(self, t_s: float, f: Features) -> float | None:
        if self._collecting is not None:
            self._collecting.add(t_s, f)
            done = self._collecting.result(t_s)
            if done is not None:
                self.baseline, self._collecting = done, None
        if self.baseline is None:
            return None
        norm, own = norm_score(f), own_score(f, self.baseline)
        if norm is None or own is None:
            return self.value
        raw = 0.5 * norm + 0.5 * own
        if self.value is None or self._t is None:
            self.value = raw
        else:
            alpha = 1.0 - math.exp(-max(t_s - self._t, 0.0) / self.tau_s)
            self.value += alpha * (raw - self.value)
        self._t = t_s
        return self.value
