"""Calm score in [0, 1] per person: change against their own baseline, nothing else.

``calm`` is a weighted mean of logistic scores of the change from the person's own
baseline (the first :data:`BASELINE_S` seconds, or a baseline the therapist starts),
0.5 meaning "as at baseline", smoothed with a time constant of :data:`CALM_TAU_S`, and
``None`` until that baseline is known:

- heart rate (weight 0.4; 5 % faster lowers its score to 0.27): sympathetic and vagal
  activation both show in it;
- ln RMSSD (0.4, scale 0.3): vagally mediated heart-rate variability (Laborde et al.
  2017);
- breathing rate (0.1, a 15 % rise -> 0.27) and breathing regularity (0.1, scale 0.1).

There is no between-person term: people differ in resting heart rate and RMSSD by age,
sex and fitness (RMSSD roughly halves from the 20s to the 60s; Nunan et al. 2010), and an
untreated population range would make an older partner look less calm than a younger
one at the same state. Each person is compared only with themselves.

Slow breathing is kept from counting three times: breathing rate and regularity carry a
fifth of the weight together (slow, even paced breathing with heart rate and RMSSD
unchanged raises the score by at most 0.1), and respiratory sinus arrhythmia, which
grows mechanically with slow breathing (Grossman & Taylor 2007), is not in the score at
all: it is measured at the breathing frequency (:meth:`coach.heart.HeartTracker.rsa_bpm`)
and reported beside the breathing rate. RMSSD too grows somewhat with slow breathing; a
session of paced breathing should read the score with that in mind
(docs/coregulation.md).

References
----------
Laborde S, Mosley E, Thayer JF. Heart rate variability and cardiac vagal tone in
psychophysiological research. Front Psychol 8:213, 2017.
Grossman P, Taylor EW. Toward understanding respiratory sinus arrhythmia. Biol Psychol
74(2):263-285, 2007.
Nunan D, Sandercock GRH, Brodie DA. A quantitative systematic review of normal values for
short-term heart rate variability in healthy adults. Pacing Clin Electrophysiol
33(11):1407-1417, 2010.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from coach.config import CALM_TAU_S

BASELINE_S = 120.0  # seconds of baseline by default

# (feature, weight, scale, higher_is_calmer, log): see the module docstring
_OWN_TERMS = (
    ("hr_bpm", 0.4, 0.05, False, False),
    ("rmssd_ms", 0.4, 0.3, True, True),
    ("rate_bpm", 0.1, 0.15, False, False),
    ("regularity", 0.1, 0.1, True, False),
)


@dataclass(frozen=True, slots=True)
class Features:
    """What the calm score is computed from; None = unknown."""

    hr_bpm: float | None = None
    rmssd_ms: float | None = None
    rate_bpm: float | None = None
    regularity: float | None = None


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def own_score(f: Features, base: Features) -> float | None:
    """Weighted logistic scores of the change from baseline (needs heart rate or RMSSD)."""
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
    return total / weight_sum if weight_sum >= 0.4 else None  # heart rate or RMSSD known


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
        raw = own_score(f, self.baseline)
        if raw is None:
            return self.value
        if self.value is None or self._t is None:
            self.value = raw
        else:
            alpha = 1.0 - math.exp(-max(t_s - self._t, 0.0) / self.tau_s)
            self.value += alpha * (raw - self.value)
        self._t = t_s
        return self.value
