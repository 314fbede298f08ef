"""Breath detection from a breathing wave, shared by every breathing source.

A *breathing wave* is any signal sampled on a regular grid that rises during
inhalation: chest motion, ECG-derived respiration, or heart rate (RSA). This module
band-limits it, finds inhale onsets (troughs) and exhale onsets (peaks), turns them
into a rate per second, a phase and a depth, scores the wave's quality, and fuses
several waves into one.

Two forms share the same filter design and the same rules: ``resp_*`` functions
analyse a whole recording (offline, zero-phase), :class:`BreathTracker` follows a
wave chunk by chunk (causal, bounded state).

References
----------
.. [1] Schäfer A, Kratky KW. Estimation of breathing rate from respiratory sinus
   arrhythmia: comparison of various methods. Ann Biomed Eng. 2008;36(3):476-485.
.. [2] Karlen W, Raman S, Ansermino JM, Dumont GA. Multiparameter respiratory rate
   estimation from the photoplethysmogram. IEEE Trans Biomed Eng. 2013;60(7):1946-1953.
.. [3] Charlton PH, et al. An assessment of algorithms to estimate respiratory rate
   from the electrocardiogram and photoplethysmogram. Physiol Meas. 2016;37(4):610-626.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import signal

WAVE_FS_HZ: Final = 4.0  # Hz, grid of derived breathing waves
BAND_HZ: Final = (0.1, 0.6)  # Hz, breathing band: 6 .. 36 breaths/min
RATE_MIN_BPM: Final = 4.0  # breaths per minute
RATE_MAX_BPM: Final = 40.0  # breaths per minute
AMPLITUDE_FRACTION: Final = 0.3  # of the upper quartile of cycle amplitudes [1]
LOCAL_SPAN_S: Final = 20.0  # s, half-width of the local amplitude threshold
QUALITY_WINDOW_S: Final = 32.0  # s, window of the spectral quality index
TWO_PI: Final = 2.0 * math.pi


class SosStream:
    """A causal SOS filter keeping its state between chunks (along axis 0).

    The state starts at the steady state for the first sample, which avoids the
    start-up transient; chunked output equals one-shot ``sosfilt`` output.
    """

    def __init__(self, sos: np.ndarray) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self.zi: np.ndarray | None = None

    def process(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float64)
        if x.size == 0:
            return x.copy()
        if self.zi is None:
            zi = signal.sosfilt_zi(self.sos)
            self.zi = zi[..., None] * x[0] if x.ndim == 2 else zi * x[0]
        y, self.zi = signal.sosfilt(self.sos, x, axis=0, zi=self.zi)
        return y


def resp_sos(fs_hz: float, band_hz: tuple[float, float] = BAND_HZ, order: int = 2) -> np.ndarray:
    """Butterworth band-pass for breathing, in SOS form (stable at low cutoffs)."""
    return signal.butter(order, band_hz, btype="bandpass", fs=fs_hz, output="sos")


def resp_clean(wave: np.ndarray, fs_hz: float, causal: bool = False) -> np.ndarray:
    """Band-limit a breathing wave: zero-phase offline, or the causal filter."""
    sos = resp_sos(fs_hz)
    x = np.asarray(wave, dtype=np.float64)
    if causal:
        return SosStream(sos).process(x)
    return signal.sosfiltfilt(sos, x - np.mean(x))


def resp_phase_delay_s(fs_hz: float, rate_bpm: float) -> float:
    """How late the causal breathing filter shows a breath at a rate, in seconds.

    The phase delay (not the group delay) moves the extrema of a sinusoid; it is
    negative below the band centre, where the band-pass leads.
    """
    f = float(np.clip(rate_bpm / 60.0, 0.02, fs_hz / 2 - 0.01))
    _, h = signal.sosfreqz(resp_sos(fs_hz), worN=[f], fs=fs_hz)
    return float(-np.angle(h[0]) / (2 * math.pi * f))


# ----------------------------------------------------------------------------- offline


@dataclass(frozen=True, slots=True)
class Breaths:
    """Breath events of one recording, times in seconds.

    ``onset_s``: inhale onsets (wave troughs); ``exhale_s``: exhale onsets (peaks);
    ``depth``: peak-to-trough amplitude of each exhale, in wave units.
    """

    onset_s: np.ndarray
    exhale_s: np.ndarray
    depth: np.ndarray


def _alternate(idx: np.ndarray, is_max: np.ndarray, x: np.ndarray) -> list[tuple[int, bool]]:
    """Merge extrema into a strictly alternating max/min sequence, keeping the extreme."""
    out: list[tuple[int, bool]] = []
    for i, m in zip(idx.tolist(), is_max.tolist(), strict=True):
        if out and out[-1][1] == m:
            j = out[-1][0]
            if (x[i] > x[j]) == m:
                out[-1] = (i, m)
            continue
        out.append((i, m))
    return out


def _local_threshold(ext: list[tuple[int, bool]], x: np.ndarray, span: int) -> np.ndarray:
    """Per-sample threshold: 0.3 x upper quartile of the swings within +-span samples."""
    pos = np.array([i for i, _ in ext], dtype=np.float64)
    swings = np.abs(np.diff(x[pos.astype(int)]))
    mid = (pos[1:] + pos[:-1]) / 2
    lo = np.searchsorted(mid, mid - span)
    hi = np.searchsorted(mid, mid + span, side="right")
    q3 = np.array([np.percentile(swings[a:b], 75) for a, b in zip(lo, hi, strict=True)])
    return np.interp(np.arange(x.size), mid, AMPLITUDE_FRACTION * q3)


def _prune_small(ext: list[tuple[int, bool]], x: np.ndarray, span: int) -> list[tuple[int, bool]]:
    """Drop extremum pairs swinging less than 0.3 x the local upper quartile [1]."""
    if len(ext) < 3:
        return ext
    thr = _local_threshold(ext, x, span)
    while len(ext) >= 3:
        pos = np.array([i for i, _ in ext])
        swings = np.abs(np.diff(x[pos]))
        ratio = swings / np.maximum(thr[(pos[1:] + pos[:-1]) // 2], 1e-300)
        k = int(np.argmin(ratio))
        if ratio[k] >= 1.0:
            break
        del ext[k : k + 2]
        ext = _alternate(np.array([i for i, _ in ext], dtype=int), np.array([m for _, m in ext]), x)
    return ext


def _refine(x: np.ndarray, i: int) -> float:
    """Sub-sample position of an extremum by parabolic interpolation."""
    if 0 < i < len(x) - 1:
        den = x[i - 1] - 2 * x[i] + x[i + 1]
        if den != 0:
            return i + 0.5 * (x[i - 1] - x[i + 1]) / den
    return float(i)


def resp_breaths(
    wave: np.ndarray, fs_hz: float, t0_s: float = 0.0, span_s: float = LOCAL_SPAN_S
) -> Breaths:
    """Inhale and exhale onsets of a band-limited breathing wave.

    Advanced counting after Schäfer & Kratky [1]_: local extrema, made to alternate,
    with pairs swinging less than 0.3 x the upper quartile of the swings within
    +-``span_s`` removed (local rather than global, so that shallow fast breathing
    next to deep slow breathing is still counted).

    Parameters
    ----------
    wave : band-limited breathing wave, rising on inhalation.
    fs_hz : its sampling rate.
    t0_s : time of its first sample.
    """
    x = np.asarray(wave, dtype=np.float64)
    d = np.diff(x)
    maxima = np.flatnonzero((d[:-1] > 0) & (d[1:] <= 0)) + 1
    minima = np.flatnonzero((d[:-1] < 0) & (d[1:] >= 0)) + 1
    idx = np.concatenate([maxima, minima])
    is_max = np.concatenate([np.ones(maxima.size, bool), np.zeros(minima.size, bool)])
    order = np.argsort(idx, kind="stable")
    ext = _prune_small(_alternate(idx[order], is_max[order], x), x, round(span_s * fs_hz))
    on = [t0_s + _refine(x, i) / fs_hz for i, m in ext if not m]
    ex, depth = [], []
    for k, (i, m) in enumerate(ext):
        if m:
            ex.append(t0_s + _refine(x, i) / fs_hz)
            prev = x[ext[k - 1][0]] if k > 0 else np.nan
            depth.append(x[i] - prev)
    return Breaths(np.array(on), np.array(ex), np.array(depth))


def _cycle_rate(events_s: np.ndarray, grid_s: np.ndarray) -> np.ndarray:
    """60 / (length of the event-to-event cycle containing each grid time)."""
    out = np.full(grid_s.shape, np.nan)
    if events_s.size < 2:
        return out
    period = np.diff(events_s)
    k = np.searchsorted(events_s, grid_s, side="right") - 1
    inside = (k >= 0) & (k < period.size)
    p = period[k[inside]]
    ok = (p >= 60.0 / RATE_MAX_BPM) & (p <= 60.0 / RATE_MIN_BPM)
    vals = np.where(ok, 60.0 / p, np.nan)
    out[inside] = vals
    return out


def resp_rate(breaths: Breaths, grid_s: np.ndarray) -> np.ndarray:
    """Breathing rate (breaths/min) on a time grid; NaN where no cycle covers it.

    Averages the onset-to-onset and exhale-to-exhale cycles covering each time.
    """
    both = np.vstack([_cycle_rate(breaths.onset_s, grid_s), _cycle_rate(breaths.exhale_s, grid_s)])
    n = np.sum(np.isfinite(both), axis=0)
    tot = np.nansum(both, axis=0)
    return np.where(n > 0, tot / np.maximum(n, 1), np.nan)


def resp_quality(wave: np.ndarray, fs_hz: float) -> tuple[float, float]:
    """Spectral quality of a breathing wave: (peak rate in breaths/min, prominence).

    Prominence is the share of in-band power within +-0.04 Hz of the spectral peak,
    in [0, 1]; a clean sinusoid scores near 1, noise near the band-width ratio [2]_.
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.size < 8 * fs_hz or not np.any(x != x[0]):
        return math.nan, 0.0
    nfft = max(1024, 1 << math.ceil(math.log2(x.size)))
    f, p = signal.periodogram(x - x.mean(), fs=fs_hz, window="hann", nfft=nfft)
    band = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
    if not np.any(p[band] > 0):
        return math.nan, 0.0
    fb, pb = f[band], p[band]
    k = int(np.argmax(pb))
    near = np.abs(fb - fb[k]) <= 0.04
    return 60.0 * float(fb[k]), float(pb[near].sum() / pb.sum())


def resp_fuse(waves: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted sum of standardised waves, each sign-aligned to the first [2]_ [3]_.

    The first wave must have a known sign (e.g. heart rate, which rises on inhaling);
    ECG amplitudes fall or rise with inhalation depending on the electrodes.
    """
    ref = waves[0] - waves[0].mean()
    out = np.zeros_like(ref, dtype=np.float64)
    for w, q in zip(waves, weights, strict=True):
        z = (w - w.mean()) / (w.std() or 1.0)
        out += q * (1.0 if np.dot(z, ref) >= 0 else -1.0) * z
    return out


class WaveFuser:
    """Causal fusion of breathing waves sampled on one grid [2]_ [3]_.

    Each source is band-limited, standardised by a running variance, sign-aligned to
    source 0 by a running covariance and weighted by its spectral quality over the
    last :data:`QUALITY_WINDOW_S`, refreshed every 4 s. Memory is bounded.
    """

    def __init__(self, n_sources: int, fs_hz: float = WAVE_FS_HZ) -> None:
        self.fs_hz = fs_hz
        self._filters = [SosStream(resp_sos(fs_hz)) for _ in range(n_sources)]
        self._pending: list[deque[float]] = [deque() for _ in range(n_sources)]
        self._recent: list[deque[float]] = [
            deque(maxlen=round(QUALITY_WINDOW_S * fs_hz)) for _ in range(n_sources)
        ]
        self._var = np.ones(n_sources)
        self._cov = np.zeros(n_sources)
        self.weights = np.ones(n_sources)
        self._n = 0
        self._alpha = 1.0 / (QUALITY_WINDOW_S * fs_hz)

    def push(self, source: int, samples: np.ndarray) -> None:
        """Add consecutive grid samples of one source (all sources share a grid)."""
        self._pending[source].extend(self._filters[source].process(samples).tolist())

    def pop(self) -> np.ndarray:
        """Fused samples for every grid point all sources have reached."""
        n = min(len(p) for p in self._pending)
        out = np.empty(n)
        for k in range(n):
            v = np.array([p.popleft() for p in self._pending])
            out[k] = self._fuse(v)
        return out

    def _fuse(self, v: np.ndarray) -> float:
        a = self._alpha if self._n > 4 * self.fs_hz else 1.0 / (self._n + 1)
        self._var += a * (v * v - self._var)
        z = v / np.sqrt(np.maximum(self._var, 1e-300))
        self._cov += a * (z * z[0] - self._cov)
        for r, x in zip(self._recent, z.tolist(), strict=True):
            r.append(x)
        if self._n % round(4 * self.fs_hz) == 0:
            self.weights = np.array(
                [resp_quality(np.array(r), self.fs_hz)[1] for r in self._recent]
            )
        self._n += 1
        return float(np.sum(self.weights * np.where(self._cov >= 0, 1.0, -1.0) * z))


# ----------------------------------------------------------------------------- causal


@dataclass(frozen=True, slots=True)
class BreathEvent:
    """A breath event found live: ``kind`` is "onset" (inhale) or "exhale"."""

    t_s: float
    kind: str
    depth: float


class BreathTracker:
    """Causal breath detection on a breathing wave, chunk by chunk.

    The wave is band-limited with the causal breathing filter; an extremum is
    confirmed when the wave has moved away from it by a hysteresis of 0.3 x the
    median recent swing (the causal analogue of [1]_). Event times are back-dated by
    the filter's phase delay at the current rate, so the phase stays aligned.
    """

    def __init__(
        self, fs_hz: float = WAVE_FS_HZ, prefiltered: bool = False, history: int = 8
    ) -> None:
        self.fs_hz = fs_hz
        self._filter = None if prefiltered else SosStream(resp_sos(fs_hz))
        self._n = 0
        self._rising = True
        self._ext_v = -math.inf
        self._ext_i = 0
        self._last_v = 0.0
        self._swings: deque[float] = deque(maxlen=history)
        self._onsets: deque[float] = deque(maxlen=history)
        self._exhales: deque[float] = deque(maxlen=history)
        self._t0_s = 0.0

    def process(self, wave: np.ndarray, t0_s: float) -> list[BreathEvent]:
        """Feed wave samples starting at ``t0_s``; return the events confirmed."""
        if self._n == 0:
            self._t0_s = t0_s
        y = np.asarray(wave, dtype=np.float64)
        if self._filter is not None:
            y = self._filter.process(y)
        events: list[BreathEvent] = []
        for v in y.tolist():
            ev = self._step(v)
            if ev is not None:
                events.append(ev)
            self._n += 1
        return events

    def _hysteresis(self) -> float:
        return AMPLITUDE_FRACTION * float(np.median(self._swings)) if self._swings else 0.0

    def _step(self, v: float) -> BreathEvent | None:
        if (v > self._ext_v) == self._rising or self._n == 0:
            self._ext_v, self._ext_i = v, self._n
            return None
        if abs(v - self._ext_v) <= self._hysteresis() or abs(v - self._ext_v) == 0:
            return None
        swing = abs(self._ext_v - self._last_v)
        t = self._t0_s + self._ext_i / self.fs_hz - self._delay_s()
        kind = "exhale" if self._rising else "onset"
        self._last_v, self._rising = self._ext_v, not self._rising
        self._ext_v, self._ext_i = v, self._n
        if self._swings and swing < self._hysteresis():
            return None  # a ripple: keep the turn, report no breath
        self._swings.append(swing)
        (self._exhales if kind == "exhale" else self._onsets).append(t)
        return BreathEvent(t, kind, swing)

    def _delay_s(self) -> float:
        r = self.rate_bpm(None)
        return resp_phase_delay_s(self.fs_hz, r if math.isfinite(r) else 12.0)

    def rate_bpm(self, t_s: float | None, cycles: int = 2) -> float:
        """Mean rate over the last ``cycles`` onset and exhale cycles; NaN if stale."""
        periods: list[float] = []
        for ev in (self._onsets, self._exhales):
            e = list(ev)[-(cycles + 1) :]
            periods += np.diff(e).tolist()
        periods = [p for p in periods if 60.0 / RATE_MAX_BPM <= p <= 60.0 / RATE_MIN_BPM]
        if not periods:
            return math.nan
        period = float(np.mean(periods))
        last = max(
            self._onsets[-1] if self._onsets else -math.inf,
            self._exhales[-1] if self._exhales else -math.inf,
        )
        if t_s is not None and t_s - last > max(2.5 * period, 20.0):
            return math.nan
        return 60.0 / period

    def phase(self, t_s: float) -> float:
        """Phase in [0, 2*pi) at ``t_s``: 0 at the last inhale onset, held below 2*pi."""
        r = self.rate_bpm(t_s)
        if not self._onsets or not math.isfinite(r):
            return math.nan
        frac = (t_s - self._onsets[-1]) * r / 60.0
        return TWO_PI * min(max(frac, 0.0), 0.999)
