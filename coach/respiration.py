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
.. [4] Schreglmann SR, Wang D, Peach RL, et al. Non-invasive suppression of essential
   tremor via phase-locked disruption of its temporal coherence. Nat Commun.
   2021;12:363 (the endpoint-corrected Hilbert transform, ecHT).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
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

log = logging.getLogger(__name__)


def sosfilt_public(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> None:
    """:func:`sosfilt_rows` through the public ``scipy.signal.sosfilt``."""
    y, z = signal.sosfilt(sos, x, axis=-1, zi=np.moveaxis(zi, 1, 0))
    x[...] = y
    zi[...] = np.moveaxis(z, 0, 1)


def _fast_sosfilt() -> Callable[[np.ndarray, np.ndarray, np.ndarray], None]:
    """The C loop behind ``scipy.signal.sosfilt``, without its argument checks (2 instead
    of 25 us a call), if this scipy has it and it gives sosfilt's output on a probe;
    else the public function."""
    try:
        from scipy.signal._sosfilt import _sosfilt
    except ImportError:  # pragma: no cover - a scipy that moved it
        return sosfilt_public
    sos = signal.butter(2, (0.1, 0.4), "bandpass", fs=4.0, output="sos")
    x, zi = np.sin(np.arange(24.0))[None, :], np.full((1, 2, 2), 0.5)
    fast, public = (x.copy(), zi.copy()), (x.copy(), zi.copy())
    try:
        _sosfilt(sos, *fast)
    except Exception:  # pragma: no cover - a scipy whose private loop changed
        return sosfilt_public
    sosfilt_public(sos, *public)
    same = all(np.array_equal(a, b) for a, b in zip(fast, public, strict=True))
    return _sosfilt if same else sosfilt_public


_sosfilt_c = _fast_sosfilt()


def sosfilt_rows(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> None:
    """Filter each row of ``x`` in place, exactly as ``scipy.signal.sosfilt`` would.

    ``sos``: (sections, 6), ``x``: (rows, samples), ``zi``: (rows, sections, 2), all
    C-contiguous float64; ``zi`` is updated in place. The live filters run on chunks of
    a few dozen samples many times a second, where sosfilt's argument checks cost ten
    times the filtering.
    """
    _sosfilt_c(sos, x, zi)


class SosStream:
    """A causal SOS filter keeping its state between chunks (along axis 0).

    The state starts at the steady state for the first sample, which avoids the
    start-up transient; chunked output equals one-shot ``sosfilt`` output.
    """

    def __init__(self, sos: np.ndarray) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self._zi0 = signal.sosfilt_zi(self.sos)
        self.zi: np.ndarray | None = None  # (channels, sections, 2)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, dtype=np.float64)
        if x.size == 0:
            return x.copy()
        rows = np.array(x.T if x.ndim == 2 else x[None, :], order="C")
        if self.zi is None:
            self.zi = self._zi0[None, :, :] * rows[:, :1, None]
        sosfilt_rows(self.sos, rows, self.zi)
        return rows.T if x.ndim == 2 else rows[0]


def resp_sos(fs_hz: float, band_hz: tuple[float, float] = BAND_HZ, order: int = 2) -> np.ndarray:
    """Butterworth band-pass for breathing, in SOS form (stable at low cutoffs)."""
    return signal.butter(order, band_hz, btype="bandpass", fs=fs_hz, output="sos")


def resp_clean(
    wave: np.ndarray, fs_hz: float, causal: bool = False, band_hz: tuple[float, float] = BAND_HZ
) -> np.ndarray:
    """Band-limit a breathing wave: zero-phase offline, or the causal filter."""
    sos = resp_sos(fs_hz, band_hz)
    x = np.asarray(wave, dtype=np.float64)
    if causal:
        return SosStream(sos).process(x)
    return resp_filtfilt(sos, x - np.mean(x))


def resp_filtfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None) -> np.ndarray:
    """Zero-phase filtering, equal to ``scipy.signal.sosfiltfilt`` with its defaults.

    Along the last axis (several waves at once in one call). Odd extension of
    3 x (2 x sections + 1) samples at each end; ``zi`` (from ``sosfilt_zi``) can be
    passed in to save solving for it on every call.
    """
    zi = signal.sosfilt_zi(sos) if zi is None else zi
    n = x.shape[-1]
    pad = min(3 * (2 * len(sos) + 1), n - 1)
    first, last = x[..., :1], x[..., -1:]
    ext = np.concatenate(
        [2 * first - x[..., pad:0:-1], x, 2 * last - x[..., -2 : -pad - 2 : -1]], axis=-1
    )
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    y = np.array(ext.reshape(-1, ext.shape[-1]), dtype=np.float64, order="C")
    sosfilt_rows(sos, y, zi[None, :, :] * y[:, :1, None])
    y = np.array(y[:, ::-1], order="C")
    sosfilt_rows(sos, y, zi[None, :, :] * y[:, :1, None])
    return y[:, ::-1][:, pad : pad + n].reshape(x.shape)


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


def _alternate(idx: np.ndarray, is_max: np.ndarray, x: list[float]) -> list[tuple[int, bool]]:
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


def quantile_of_sorted(s: Sequence[float], q: float) -> float:
    """``np.percentile(s, 100 * q)`` (linear) of an already sorted sequence, without its
    overhead on short ones."""
    pos = q * (len(s) - 1)
    k = int(pos)
    return float(s[k] + (s[min(k + 1, len(s) - 1)] - s[k]) * (pos - k))


def median_of_sorted(s: np.ndarray) -> float:
    """``np.median`` of an already sorted array (same value), without its overhead."""
    n = s.size
    return float(s[n // 2]) if n % 2 else float((s[n // 2 - 1] + s[n // 2]) / 2)


def _window_upper_quartiles(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``np.percentile(values[a:b], 75)`` (linear) for every window ``[a, b)``.

    A dozen windows of a dozen values: plain Python sorts them faster than numpy calls.
    """
    v = values.tolist()
    return np.array([quantile_of_sorted(sorted(v[a:b]), 0.75)
                     for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])


def _local_threshold(pos: np.ndarray, x: np.ndarray, span: int) -> np.ndarray:
    """Per-sample threshold: 0.3 x upper quartile of the swings within +-span samples."""
    swings = np.abs(np.diff(x[pos]))
    mid = (pos[1:] + pos[:-1]) / 2
    lo = np.searchsorted(mid, mid - span)
    hi = np.searchsorted(mid, mid + span, side="right")
    q3 = _window_upper_quartiles(swings, lo, hi)
    return np.interp(np.arange(x.size), mid, AMPLITUDE_FRACTION * q3)


def _prune_small(ext: list[tuple[int, bool]], x: np.ndarray, span: int) -> list[tuple[int, bool]]:
    """Drop extremum pairs swinging less than 0.3 x the local upper quartile [1].

    Removing two neighbours of an alternating sequence leaves it alternating.
    """
    if len(ext) < 3:
        return ext
    pos = [i for i, _ in ext]
    thr = _local_threshold(np.array(pos), x, span).tolist()
    xs = x.tolist()  # a few dozen extrema: plain Python beats many small numpy calls

    def swing(a: int, b: int) -> float:  # of the pair (a, b), relative to its threshold
        return abs(xs[b] - xs[a]) / max(thr[(a + b) // 2], 1e-300)

    ratio = [swing(a, b) for a, b in itertools.pairwise(pos)]  # ratio[i]: pos[i], pos[i + 1]
    while len(ext) >= 3:
        smallest = min(ratio)
        if smallest >= 1.0:
            break
        k = ratio.index(smallest)
        # the swings into, of and out of the pair go; the neighbours now swing directly
        joined = [swing(pos[k - 1], pos[k + 2])] if 0 < k < len(pos) - 2 else []
        ratio[max(k - 1, 0) : k + 2] = joined
        del ext[k : k + 2], pos[k : k + 2]
    return ext


def _refine(x: list[float], i: int) -> float:
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
    d = x[1:] - x[:-1]
    rise, fall = d[:-1], d[1:]
    maxima = (rise > 0) & (fall <= 0)
    idx = np.flatnonzero(maxima | ((rise < 0) & (fall >= 0)))  # in time order
    xs = x.tolist()  # scalar work on Python floats: the same arithmetic, faster
    ext = _prune_small(_alternate(idx + 1, maxima[idx], xs), x, round(span_s * fs_hz))
    on, ex, depth = [], [], []
    for k, (i, m) in enumerate(ext):
        t = t0_s + _refine(xs, i) / fs_hz
        if m:
            ex.append(t)
            depth.append(xs[i] - xs[ext[k - 1][0]] if k > 0 else math.nan)
        else:
            on.append(t)
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


@functools.lru_cache(maxsize=32)
def _hann(n: int) -> np.ndarray:
    return signal.windows.hann(n, sym=False)


@functools.lru_cache(maxsize=32)
def _band(
    nfft: int, fs_hz: float, band_hz: tuple[float, float] = BAND_HZ
) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies of the breathing band in an ``nfft`` spectrum, and their mask."""
    f = np.fft.rfftfreq(nfft, 1.0 / fs_hz)
    band = (f >= band_hz[0]) & (f <= band_hz[1])
    return f[band], band


def resp_quality(wave: np.ndarray, fs_hz: float) -> tuple[float, float]:
    """Spectral quality of a breathing wave: (peak rate in breaths/min, prominence).

    Prominence is the share of in-band power within +-0.04 Hz of the spectral peak,
    in [0, 1]; a clean sinusoid scores near 1, noise near the band-width ratio [2]_.
    """
    x = np.asarray(wave, dtype=np.float64)
    rate, prominence = resp_qualities(x[None, :], fs_hz)
    return float(rate[0]), float(prominence[0])


def resp_qualities(waves: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resp_quality` of several equally long waves (rows) at once."""
    x = np.asarray(waves, dtype=np.float64)
    return _prominences(_band_spectra(x, fs_hz), np.any(x != x[:, :1], axis=1))


def _band_spectra(
    x: np.ndarray, fs_hz: float, band_hz: tuple[float, float] = BAND_HZ
) -> tuple[np.ndarray, np.ndarray] | None:
    """(frequencies, spectra) in the breathing band of the centred, Hann-windowed rows;
    None if the rows are shorter than 8 s. Linear in the rows."""
    n = x.shape[1]
    if n < 8 * fs_hz:
        return None
    nfft = max(1024, 1 << math.ceil(math.log2(n)))
    spec = np.fft.rfft((x - x.mean(axis=1, keepdims=True)) * _hann(n), nfft, axis=1)
    fb, band = _band(nfft, fs_hz, band_hz)
    return fb, spec[:, band]


def _prominences(
    spectra: tuple[np.ndarray, np.ndarray] | None, varies: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Peak rate and prominence of each row of band spectra (rows that vary only)."""
    k = len(varies)
    rate, prom = np.full(k, math.nan), np.zeros(k)
    if spectra is None:
        return rate, prom
    fb, spec = spectra
    pb = np.abs(spec) ** 2
    total = pb.sum(axis=1)
    peak = np.argmax(pb, axis=1)
    # a spectrum that only falls (or rises) across the band has no breathing peak: red
    # noise (slow drift, heart-rate wander) would otherwise score as a clean breath
    ok = varies & np.any(pb > 0, axis=1) & (peak > 0) & (peak < pb.shape[1] - 1)
    near = np.abs(fb[None, :] - fb[peak][:, None]) <= 0.04
    rate[ok] = 60.0 * fb[peak][ok]
    prom[ok] = (pb * near).sum(axis=1)[ok] / total[ok]
    return rate, prom


def resp_fuse(
    waves: list[np.ndarray], weights: list[float], signs: list[float] | None = None
) -> np.ndarray:
    """Weighted sum of standardised waves, each sign-aligned to the first [2]_ [3]_.

    The first wave must have a known sign (e.g. heart rate, which rises on inhaling);
    ECG amplitudes fall or rise with inhalation depending on the electrodes. Without
    ``signs`` each wave's sign is that of its dot product with the first.
    """
    x = np.array(waves, dtype=np.float64)
    if signs is None:
        ref = x[0] - x[0].mean()
        signs = [1.0 if np.dot(xk - xk.mean(), ref) >= 0 else -1.0 for xk in x]
    coef = np.array([q * s for q, s in zip(weights, signs, strict=True)])
    return _fused(x, _fuse_scale(coef, x.std(axis=1)))


def _fuse_scale(coef: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Factor of each centred wave in the fused one: its weight over its deviation."""
    return coef / np.where(sd == 0, 1.0, sd)


def _fused(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Sum of the centred rows of ``x`` times ``scale``."""
    return (scale[:, None] * (x - x.mean(axis=1, keepdims=True))).sum(axis=0)


# ----------------------------------------------------------------------------- causal

WINDOW_S: Final = 60.0  # s, trailing window re-analysed live
UPDATE_S: Final = 1.0  # s, how often the live window is re-analysed
QUALITY_TAU_S: Final = 300.0  # s, memory of each source's spectral quality
CONFIDENCE_PRIOR: Final = 0.5  # quality assumed before the first window (one window's worth)
WEIGHT_POWER: Final = 4.0  # fusion weight = long-term quality ** this (tuned, docs/breathing.md)
STALE_PERIODS: Final = 2.5  # periods without a breath before the rate is unknown
PHASE_CYCLES: Final = 3  # newest cycles whose median period extrapolates a chest-motion phase
PHASE_EVENTS: Final = 2  # newest breath events (extrema, mid-crossings) the live phase is fitted to
# the live phase's analytic signal at the window's edge (endpoint-corrected Hilbert
# transform): width of its causal band-pass around the current rate, relative to the rate
# (chosen on the simulator, docs/breathing.md "Live phase from breath events")
ECHT_WIDTH: Final = 1.0
PHASE_ECHT_WEIGHT: Final = 1.0  # the ecHT phase's weight against the events' mean vector
CONTINUE_FIT_S: Final = 30.0  # s of overlap a source that ends early is continued from
# Polarity (docs/breathing.md, "Polarity"): heart rate follows the breath with a lag of its
# own (0-3 s, per person). A wave's sign is that of its correlation with heart rate at the
# lag where that correlation is largest in magnitude (the true lag: elsewhere the breath's
# own variability and shape make it smaller), not at lag 0, where it is cos(2 pi lag / period)
# and flips with the rate. Without heart rate, the wave's asymmetry (inhale shorter and
# steeper than exhale) gives the sign.
LAG_GRID_S: Final = np.arange(-0.5, 3.51, 0.25)  # s, candidate lags of heart rate behind a wave
LAG_TAU_S: Final = 120.0  # s, memory of the lag and sign evidence
SIGN_MIN_UPDATES: Final = 15  # analyses before a sign may be established
SIGN_FORCE_UPDATES: Final = 25  # analyses after which the best evidence decides the sign
SIGN_MARGIN: Final = 0.08  # relative lead of the best lag over the best opposite-sign lag
SKEW_MIN: Final = 0.03  # |skewness| of the wave's slope that establishes a sign by asymmetry
LAG_MIN_CORR: Final = 0.5  # correlation at a lag that makes it the person's own
# s, heart rate behind the breath when a person's own lag is unknown: MARSH (RSA vs the
# impedance wave) shows -0.5..0 s, the literature 0-3 s (docs/breathing.md, "Polarity")
POPULATION_LAG_S: Final = 0.75
# s, the lag whose sign decides when the evidence is weak: on MARSH, R amplitude and QRS
# area line up with heart rate at -0.5..0 s (docs/breathing.md, "Polarity")
SIGN_PRIOR_LAG_S: Final = 0.0
FLIP_TAU_S: Final = 8.0  # s, memory of the short-term evidence against a held sign
FLIP_MIN: Final = 0.25  # correlation against the held sign that counts as contrary evidence
FLIP_HOLD_S: Final = 20.0  # s of contrary evidence before a held sign changes (logged)


def _row_medians(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=1, keepdims=True)`` (the same values), without its overhead."""
    s = np.sort(a, axis=1)
    h = s.shape[1] // 2
    if s.shape[1] == 0 or np.isnan(s[:, -1]).any():
        return np.median(a, axis=1, keepdims=True)
    return s[:, h : h + 1] if s.shape[1] % 2 else (s[:, h - 1 : h] + s[:, h : h + 1]) / 2


def _extremum_near(c: np.ndarray, lag_s: float) -> int:
    """Index into :data:`LAG_GRID_S` of the local extremum of the correlation ``c`` (a
    peak of either sign inside the grid) nearest ``lag_s``; the index of ``lag_s`` itself
    if there is none. At the prior lag itself the correlation may sit near a zero
    crossing, where its sign says nothing."""
    a = np.abs(c)
    peaks = np.flatnonzero((a[1:-1] >= a[:-2]) & (a[1:-1] >= a[2:])) + 1
    if not peaks.size:
        return int(np.argmin(np.abs(LAG_GRID_S - lag_s)))
    return int(peaks[np.argmin(np.abs(LAG_GRID_S[peaks] - lag_s))])


@dataclass(frozen=True, slots=True)
class WindowState:
    """The latest analysis of a :class:`BreathWindow` (times in seconds).

    ``onset_s`` / ``exhale_s``: events inside the window; ``level``: the newest value of
    the fused wave over half the median depth (about -1..1); ``quality``: spectral
    prominence of the fused wave in [0, 1]. The phase's events, on the wave fused up to
    the freshest source: ``peak_s``, its peaks (ends of inspiration); ``rise_s`` /
    ``fall_s``, where it crosses half-way between each trough and the next peak
    (mid-inhale) and each peak and the next trough (mid-exhale), the newest one possibly
    after the newest extremum (empty in :attr:`BreathWindow.state` until the window's
    phase is first read: :meth:`BreathWindow.phase` finds them); ``wave``: that wave, its
    last sample at ``wave_end_s``.
    """

    t_s: float
    onset_s: np.ndarray
    exhale_s: np.ndarray
    depth: np.ndarray
    level: float
    quality: float
    rise_s: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    peak_s: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    fall_s: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    wave: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    wave_end_s: float = math.nan


def _median_period(st: WindowState, n: int) -> tuple[float, float] | None:
    """Median of the newest ``n - 1`` onset and exhale cycles (plausible ones), and the
    time of the newest event; None without a plausible cycle."""
    periods = [p for e in (st.onset_s, st.exhale_s) for p in np.diff(e[-n:]).tolist()]
    periods = [p for p in periods if 60.0 / RATE_MAX_BPM <= p <= 60.0 / RATE_MIN_BPM]
    if not periods:
        return None
    newest = max(e[-1] for e in (st.onset_s, st.exhale_s) if e.size)
    return statistics.median(periods), float(newest)


def _mid_crossings(
    x: np.ndarray, fs_hz: float, t0_s: float, b: Breaths
) -> tuple[np.ndarray, np.ndarray]:
    """Times where the wave ``x`` crosses half-way between consecutive extrema of ``b``:
    rising (mid-inhale) and falling (mid-exhale). After the newest extremum, half-way
    back to the one before it. The steepest point of a breath: less jittered than its
    extrema, and not moved by a flat trough.

    Vectorised: the pairs of samples ``(s, s + 1)`` from each extremum to the next (the
    newest: to the end) are disjoint, so one pass finds every segment's first crossing of
    its own level."""
    ts = np.concatenate([b.onset_s, b.exhale_s])
    if ts.size < 2:
        return np.empty(0), np.empty(0)
    peak = np.arange(ts.size) >= b.onset_s.size
    order = np.lexsort((peak, ts))  # in time, an onset before a peak at the same time
    ts, peak = ts[order], peak[order]
    n = x.size
    idx = np.clip(np.rint((ts - t0_s) * fs_hz).astype(np.intp), 0, n - 1)
    ends = np.append(idx[1:], n - 1)  # each segment's pairs: idx[k] <= s < ends[k]
    level = (x[idx] + x[np.append(idx[1:], idx[-2])]) / 2
    s = np.arange(idx[0], n - 1)
    lev = np.repeat(level, ends - idx)
    a, c = x[s] - lev, x[s + 1] - lev
    cross = np.flatnonzero((a > 0) != (c > 0))
    if not cross.size:
        return np.empty(0), np.empty(0)
    first = np.searchsorted(cross, idx - idx[0])
    j = cross[np.minimum(first, cross.size - 1)]
    have = (first < cross.size) & (j + idx[0] < ends)
    j = j[have]
    t = t0_s + (s[j] + a[j] / (a[j] - c[j])) / fs_hz
    return t[~peak[have]], t[peak[have]]


def _fused_shifted(x: np.ndarray, scale: np.ndarray, m: int) -> np.ndarray:
    """The fused wave, heart rate (row 0) moved back by ``m`` samples (its lag behind
    the breath; its newest ``m`` samples are not known yet: they count as its mean)."""
    if m:
        x = x.copy()
        x[0] = np.concatenate([x[0, m:] - x[0].mean(), np.zeros(m)])
    return _fused(x, scale)


def _continue_stale(raw: np.ndarray, n: np.ndarray, fs_hz: float) -> None:
    """Continue in place the rows of ``raw`` that end early (row k has data in its
    first ``n[k]`` columns) by their least-squares fit on the rows that reach the end,
    over the last :data:`CONTINUE_FIT_S` they share. Held flat instead, a stale row
    (heart rate, two beats late) would put a false extremum at its end."""
    full = raw.shape[1]
    fresh = np.flatnonzero(n >= full)
    for k in np.flatnonzero(n < full).tolist():
        m = int(n[k])
        if not fresh.size or m < 2:
            continue
        a = max(0, m - round(CONTINUE_FIT_S * fs_hz))
        basis = np.vstack([raw[fresh], np.ones(full)])
        coef = np.linalg.lstsq(basis[:, a:m].T, raw[k, a:m], rcond=None)[0]
        raw[k, m:] = coef @ basis[:, m:]


def _echt_phase(x: np.ndarray, fs_hz: float, f0_hz: float, width: float = ECHT_WIDTH) -> float:
    """Phase (radians, 0 at a maximum) of the wave ``x`` at its newest sample, from an
    endpoint-corrected Hilbert transform (ecHT [4]_): the analytic signal of the whole
    window (FFT, negative frequencies removed), then a causal second-order Butterworth
    band-pass from (1 - W/2) to (1 + W/2) x ``f0_hz`` (the current rate; W =
    ``width``) applied in the frequency domain. The zero-phase filter's end and
    the plain Hilbert transform's both distort the newest samples; a causal filter has no
    end effect there. Its phase at ``f0_hz`` is not zero: with W = 1 it lags a sinusoid at
    the rate by 17-20 deg (the band's geometric centre is 0.87 f0), which the live phase
    uses to offset the events' lead (:meth:`BreathWindow.phase`). The response is
    evaluated in closed form (the analog prototype through the bilinear transform, as
    ``signal.butter`` designs it): designing the filter per call cost 1.2 ms, this 0.05."""
    n = x.size
    s, newest_of = _echt_grid(n, fs_hz)
    spectrum = np.fft.rfft(x - x.mean())[1:(n + 1) // 2]  # positive, below Nyquist
    warp = 2.0 * fs_hz  # bilinear transform: analog frequency of each digital one
    lo, hi = (warp * math.tan(math.pi * min(f, 0.49 * fs_hz) / fs_hz)
              for f in (f0_hz * (1.0 - width / 2), f0_hz * (1.0 + width / 2)))
    p = (s * s + lo * hi) / ((hi - lo) * s)  # low-pass prototype -> band-pass
    newest = newest_of @ (spectrum / (p * p + math.sqrt(2.0) * p + 1.0))
    return math.atan2(newest.imag, newest.real)


@functools.lru_cache(maxsize=8)
def _echt_grid(n: int, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """For :func:`_echt_phase` on ``n`` samples: the analog frequency (j Omega) of each
    positive FFT bin below Nyquist, and the weights that make the newest sample of the
    inverse transform of those bins, doubled (the analytic signal)."""
    k = np.arange(1, (n + 1) // 2)
    s = 1j * 2.0 * fs_hz * np.tan(math.pi * k / n)
    return s, 2.0 * np.exp(2j * math.pi * k * (n - 1) / n) / n


def _breath_phase(theta: float, frac: float) -> float:
    """Breath phase (0 at inhale onset) of an analytic phase ``theta`` (0 at the wave's
    maximum), its quarter-cycles stretched to the breath's: -pi/2 (rising through the
    middle) -> mid-inhale pi f, 0 -> end of inspiration 2 pi f, pi/2 -> mid-exhale
    pi (1 + f), pi -> the next onset; ``f``, the inhale fraction."""
    q = (theta + math.pi / 2) % TWO_PI / (math.pi / 2)  # quarter-cycles since mid-inhale
    spans = (math.pi * frac, math.pi * (1.0 - frac), math.pi * (1.0 - frac), math.pi * frac)
    k = min(int(q), 3)
    return (math.pi * frac + sum(spans[:k]) + (q - k) * spans[k]) % TWO_PI


def _live_phase(st: WindowState, rate_bpm: float, frac: float, t_s: float, fs_hz: float,
                width: float, weight: float) -> float | None:
    """:meth:`BreathWindow.phase` of the window state ``st`` at ``t_s`` (its delay
    added), the rate and inhale fraction given: the circular mean of the newest
    :data:`PHASE_EVENTS` events' phases (their mean vector) and, weighted ``weight``,
    the ecHT phase (its band ``width`` x the rate wide). Apart so that
    bench/phase_loo.py can replay it with other parameters."""
    marks = ((st.rise_s, math.pi * frac), (st.peak_s, TWO_PI * frac),
             (st.fall_s, math.pi * (1.0 + frac)))
    events = sorted((t, at) for e, at in marks for t in e[-PHASE_EVENTS:].tolist())
    if not events:
        return None
    w = TWO_PI * rate_bpm / 60.0
    z = sum(complex(math.cos(a), math.sin(a)) for a in (
        at + w * (t_s - t) for t, at in events[-PHASE_EVENTS:])) / len(events[-PHASE_EVENTS:])
    if st.wave.size >= 8 * fs_hz:  # the wave's own phase at its newest sample
        theta = _echt_phase(st.wave, fs_hz, rate_bpm / 60.0, width)
        at = _breath_phase(theta, frac) + w * (t_s - st.wave_end_s)
        z += weight * complex(math.cos(at), math.sin(at))
    return math.atan2(z.imag, z.real) % TWO_PI


class BreathWindow:
    """Live breath estimation: the offline analysis re-run on a trailing window.

    Every :data:`UPDATE_S` the last :data:`WINDOW_S` of each source are resampled to
    the 4 Hz grid, band-limited with the zero-phase filter, fused and counted exactly
    as offline (:func:`resp_clean`, :func:`resp_fuse`, :func:`resp_breaths` [1]_),
    using only data up to the update time, so the estimate is causal. The filter's
    edge costs accuracy only for the newest, not yet confirmed, breath.

    Fusion weights are each source's spectral quality [2]_ averaged over
    :data:`QUALITY_TAU_S` and raised to :data:`WEIGHT_POWER` (a source that is poor
    for this person stays out even in a window where it looks clean); signs are the
    long-term sign of each source's correlation with source 0 (heart rate, whose sign
    is known), so they cannot flip from window to window. ``gains`` scale the weights:
    a gain of 0 uses a source only to set the others' signs. Memory is bounded.
    """

    def __init__(
        self,
        n_sources: int,
        gains: tuple[float, ...] | None = None,
        band_hz: tuple[float, float] = BAND_HZ,
        window_s: float = WINDOW_S,
        fs_hz: float = WAVE_FS_HZ,
        cycles: int = 1,
        min_data_s: float = 0.0,
        phase_cycles: int = 1,
    ) -> None:
        self.fs_hz, self.window_s = fs_hz, window_s
        self.cycles = cycles  # newest cycles (of onsets and of exhales) whose median is the rate
        self.min_data_s = min_data_s  # s of data the window needs before it reports
        self.phase_cycles = phase_cycles  # newest cycles whose median period advances the phase
        self.echt = (ECHT_WIDTH, PHASE_ECHT_WEIGHT)  # the live phase's ecHT: width, weight
        self.gains = np.asarray(gains if gains is not None else (1.0,) * n_sources, float)
        self._used = np.flatnonzero(self.gains > 0)
        self._sos = resp_sos(fs_hz, band_hz)
        self._zi = signal.sosfilt_zi(self._sos)
        self.band_hz = band_hz
        # upper edge = this x the breathing rate (within band_hz[1] .. wide_hz), so a
        # fast breath keeps its harmonics (its shape) and a slow one no heartbeat
        self.harmonics: float | None = None
        self.wide_hz = band_hz[1]
        self._filters: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._t = [np.empty(0) for _ in range(n_sources)]
        self._v = [np.empty(0) for _ in range(n_sources)]
        self._q = np.zeros(n_sources)
        self._corr = np.zeros(n_sources)  # provisional signs (zero lag), until established
        self._xc = np.zeros((n_sources, LAG_GRID_S.size))  # long-term correlation vs lag
        self._xc_short = np.zeros((n_sources, LAG_GRID_S.size))
        self._skew = np.zeros(n_sources)  # long-term skewness of each wave's slope
        self._skew_short = np.zeros(n_sources)
        self.signs = np.zeros(n_sources)  # held polarity of each source, 0 = not yet known
        self.signs[0] = 1.0  # source 0 (heart rate, or the only wave) rises on inhaling
        self.lags_s = np.full(n_sources, math.nan)  # lag of heart rate behind each source
        self._rel = np.zeros(n_sources)  # long-term correlation with the first breathing source
        self._contrary = 0.0  # s of evidence against the held polarity
        self.flips = 0  # held signs changed (a strap turned over)
        self.label = ""  # for the log
        self.shift_rsa = False  # fuse heart rate moved back by the learned lag (ECG)
        # the person's lag of heart rate behind the breath as another window (chest
        # motion, whose sign its shape gives) has learned it: decides this one's sign
        self.taught_lag_s: float | None = None
        # (long, short)-term asymmetry of source 1 measured upstream, in a wider band
        # than the window's (chest motion): used instead of the window's own
        self.shape_skew: tuple[float, float] | None = None
        self.shape_flipped = False  # the polarity changed: the owner of shape_skew restarts it
        self._updates = 0
        self.state: WindowState | None = None
        self._crossings: tuple[np.ndarray, float, Breaths] | None = None  # see _crossed
        self._periods: dict[int, tuple[float, float] | None] = {}  # rate_bpm's, per state
        self.onsets: deque[float] = deque(maxlen=64)  # committed events, for reports
        self.exhales: deque[float] = deque(maxlen=64)

    def push(self, source: int, t_s: np.ndarray, values: np.ndarray) -> None:
        """Add points (beats or samples, increasing times) of one source."""
        t, v = self._t[source], self._v[source]
        if t.size and t[0] < t[-1] - 1.5 * self.window_s:  # bounded even if never updated
            keep = np.searchsorted(t, t[-1] - self.window_s - 2.0)
            t, v = t[keep:], v[keep:]
        self._t[source] = np.concatenate([t, np.asarray(t_s, float)])
        self._v[source] = np.concatenate([v, np.asarray(values, float)])

    def last_t(self, source: int) -> float:
        return float(self._t[source][-1]) if self._t[source].size else -math.inf

    def update(self, t_s: float, fresh_phase: bool = True) -> WindowState | None:
        """Re-analyse the window ending at ``t_s``; None if too little data.

        ``fresh_phase=False`` (a window analysed only for its rate, e.g. the strap's RR
        beside chest motion) skips reading the phase from the wave fused up to the
        freshest source: its events then come from the common part, as the rate's do."""
        lo = t_s - self.window_s
        for k in range(len(self._t)):
            keep = np.searchsorted(self._t[k], lo - 2.0)
            self._t[k], self._v[k] = self._t[k][keep:], self._v[k][keep:]
        waves = self._waves(lo, t_s)
        if waves is None or t_s - waves[0] < self.min_data_s:
            return None
        t0, x = waves
        sd = x.std(axis=1)
        # a source of gain 0 only lends its sign: its spectrum is never needed
        used = self._used
        # quality over the window's own band (chest motion reaches 3/min)
        spectra = _band_spectra(x[used], self.fs_hz, (self.band_hz[0], BAND_HZ[1]))
        q = np.zeros(len(x))
        q[used] = _prominences(spectra, np.any(x[used] != x[used, :1], axis=1))[1]
        self._learn(x, sd, q)
        self._learn_signs(x, sd)
        w = self.gains * self._q**WEIGHT_POWER
        signs = np.where(self.signs != 0, self.signs, np.where(self._corr >= 0, 1.0, -1.0))
        coef = (w if w.sum() > 0 else self.gains) * signs
        # resp_fuse, with the deviations at hand; its spectrum is the same sum of theirs
        scale = _fuse_scale(coef, sd)
        lag = self.rsa_lag_s()
        m = round(lag * self.fs_hz) if self.shift_rsa and lag is not None else 0
        m = m if 0 < m < x.shape[1] // 2 and coef[0] != 0 else 0
        fused = _fused_shifted(x, scale, m)
        if m:
            fused_spectrum = _band_spectra(fused[None, :], self.fs_hz,
                                           (self.band_hz[0], BAND_HZ[1]))
        else:
            fused_spectrum = None if spectra is None else (
                spectra[0], scale[None, used] @ spectra[1])
        varies = np.array([np.any(fused != fused[0])])
        quality = float(_prominences(fused_spectrum, varies)[1][0])
        b = resp_breaths(fused, self.fs_hz, t0)
        half = median_of_sorted(np.sort(b.depth)) / 2 if b.depth.size else 0.0
        level = min(max(float(fused[-1]) / half, -1.5), 1.5) if half > 0 else 0.0
        # the phase is read from the breath fused up to the freshest source: heart rate
        # (R-R intervals) comes two beats late, after its artifact check, and is
        # continued meanwhile, so the newest breath shows ~2 s sooner and its phase
        # need not be extrapolated as far. Rate, quality and signs keep the common part.
        wave, pb = fused, b
        # (a source of weight 0 adds nothing to it: not continued)
        reach = self._waves(lo, t_s, reach=True, needed=coef != 0) if fresh_phase else None
        if reach is not None and reach[1].shape[1] > x.shape[1]:
            xr = reach[1]
            wave = _fused_shifted(xr, _fuse_scale(coef, xr.std(axis=1)), m)
            pb = resp_breaths(wave, self.fs_hz, t0)
        # the mid-crossings serve the phase only: found when it is first read (a window
        # analysed for its rate alone, as RR beside chest motion, never needs them)
        self._crossings = (wave, t0, pb)
        self.state = WindowState(t_s, b.onset_s, b.exhale_s, b.depth, level, quality,
                                 peak_s=pb.exhale_s, wave=wave,
                                 wave_end_s=t0 + (wave.size - 1) / self.fs_hz)
        self._periods = {}
        self._commit(b, t_s)
        return self.state

    def _waves(
        self, lo: float, hi: float, reach: bool = False, needed: np.ndarray | None = None
    ) -> tuple[float, np.ndarray] | None:
        """Band-limited 4 Hz waves of the window, a row per source (flat without data),
        up to the end of the stalest source (``reach``: of the freshest one, the others
        continued meanwhile by their regression on the fresh ones; a stale source not
        ``needed`` is left flat instead, its continuation being of no use)."""
        live = [k for k, t in enumerate(self._t) if t.size >= 2 and t[-1] > lo]
        if not live:
            return None
        t0 = math.ceil(max(lo, *(self._t[k][0] for k in live)) * self.fs_hz) / self.fs_hz
        ends = [self._t[k][-1] for k in live]
        t1 = min(hi, max(ends) if reach else min(ends))
        grid = np.arange(t0, t1 + 1e-9, 1.0 / self.fs_hz)
        if grid.size < 8 * self.fs_hz:
            return None
        if reach:
            n = np.searchsorted(grid, ends, side="right")
            if needed is not None:
                keep = [j for j, k in enumerate(live) if n[j] >= grid.size or needed[k]]
                live, n = [live[j] for j in keep], n[keep]
        raw = np.array([np.interp(grid, self._t[k], self._v[k]) for k in live])
        if reach:
            _continue_stale(raw, n, self.fs_hz)
        sos, zi = self._filter()
        done = resp_filtfilt(sos, raw - raw.mean(axis=1, keepdims=True), zi)
        if len(live) == len(self._t):
            return t0, done
        clean = np.zeros((len(self._t), grid.size))
        clean[live] = done
        return t0, clean

    def _filter(self) -> tuple[np.ndarray, np.ndarray]:
        """The band-pass for this analysis (its upper edge may follow the rate)."""
        rate = self.rate_bpm()
        if self.harmonics is None or rate is None:
            return self._sos, self._zi
        hi = min(max(self.harmonics * rate / 60.0, self.band_hz[1]), self.wide_hz)
        hi = round(hi / 0.05) * 0.05
        if hi not in self._filters:
            sos = resp_sos(self.fs_hz, (self.band_hz[0], hi))
            self._filters[hi] = (sos, signal.sosfilt_zi(sos))
        return self._filters[hi]

    def _learn(self, x: np.ndarray, sd: np.ndarray, q: np.ndarray) -> None:
        """Long-term quality and sign of each source (rows ``x``, their standard
        deviations ``sd`` and qualities ``q`` in this window; exponential memory)."""
        self._updates += 1
        a = max(1.0 / self._updates, UPDATE_S / QUALITY_TAU_S)
        if sd[0] > 0:
            c = (x[0] * x).mean(axis=1) / (sd[0] * np.where(sd == 0, 1.0, sd))
            self._corr += a * (c - self._corr)
        else:
            self._corr[0] = 1.0
        self._q += a * (q - self._q)

    def _learn_signs(self, x: np.ndarray, sd: np.ndarray) -> None:
        """Lag and polarity of the breathing sources (1..) against heart rate (source 0),
        and from their asymmetry; a held polarity changes only after sustained evidence.

        The sources that show the breath at once (chest motion; R amplitude and QRS
        area) share one lag and are pooled: their signs relative to the first are
        unambiguous (their zero-lag correlation), only the common polarity is decided.
        """
        if len(x) < 2:
            return
        n = x.shape[1]
        m = np.round(LAG_GRID_S * self.fs_hz).astype(int)
        a_long = max(1.0 / self._updates, UPDATE_S / LAG_TAU_S)
        a_short = max(1.0 / self._updates, UPDATE_S / FLIP_TAU_S)
        sdn = np.where(sd == 0, 1.0, sd)
        have_hr = bool(sd[0] > 0)
        if have_hr:
            lo, hi = -int(m.min()), n - int(m.max())
            if hi - lo < 8 * self.fs_hz:
                return
            # row j of hr_lagged: heart rate m[j] samples later than the waves' segment
            hr_lagged = np.lib.stride_tricks.sliding_window_view(x[0], hi - lo)[lo + m]
            xc = (x[:, lo:hi] @ hr_lagged.T) / ((hi - lo) * sd[0] * sdn[:, None])
            self._xc += a_long * (xc - self._xc)
            self._xc_short += a_short * (xc - self._xc_short)
        d = np.diff(x, axis=1)
        # robust: a slope beyond 4 x its typical size is an artifact, not a breath
        spread = 1.4826 * _row_medians(np.abs(d))
        d = np.clip(d, -4.0 * spread, 4.0 * spread)
        dsd = d.std(axis=1)
        skew = (d**3).mean(axis=1) / np.where(dsd == 0, 1.0, dsd) ** 3
        self._skew += a_long * (skew - self._skew)
        self._skew_short += a_short * (skew - self._skew_short)
        rel = (x[1] * x).mean(axis=1) / (sdn[1] * sdn)  # vs the first breathing source
        self._rel += a_long * (rel - self._rel)
        ks = [k for k in range(1, len(x)) if sd[k] > 0 and (self.gains[k] > 0 or k == 1)]
        if ks:
            self._decide(ks, have_hr)

    def _decide(self, ks: list[int], have_hr: bool) -> None:
        """Establish, keep or (after :data:`FLIP_HOLD_S` of contrary evidence) change the
        common polarity of the sources ``ks``."""
        r = np.where(self._rel[ks] >= 0, 1.0, -1.0)
        r[0] = 1.0
        w = np.maximum(self._q[ks], 1e-3) * r
        c = w @ self._xc[ks] / np.abs(w).sum()
        c_short = w @ self._xc_short[ks] / np.abs(w).sum()
        skew = float(w @ self._skew[ks] / np.abs(w).sum())
        skew_short = float(w @ self._skew_short[ks] / np.abs(w).sum())
        if self.shape_skew is not None and ks == [1]:
            skew, skew_short = self.shape_skew
        best = int(np.argmax(np.abs(c)))
        lag_sign = 1.0 if c[best] >= 0 else -1.0
        lead = (abs(c[best]) - max(float(np.max(-lag_sign * c)), 0.0)) / max(abs(c[best]), 1e-12)
        # each kind of evidence in units of what makes it sure; the stronger one decides
        # a lag read off a weak correlation is a guess (real ECG: R amplitude and heart
        # rate often correlate < 0.3 at every lag)
        by_lag = lead / SIGN_MARGIN if have_hr and abs(c[best]) >= LAG_MIN_CORR else 0.0
        # the shape of beat-sampled waves (R amplitude, QRS area) is no guide to their
        # sign (it is skewed either way); chest motion's, measured upstream, is
        shape_known = self.shape_skew is not None or not have_hr
        by_shape = abs(skew) / SKEW_MIN if shape_known else 0.0
        if by_shape >= by_lag:
            sign, sure, how = (1.0 if skew >= 0 else -1.0), by_shape >= 1.0, "asymmetry"
        else:
            sign, sure, how = lag_sign, by_lag >= 1.0, "lag"
        taught = self.taught_lag_s if have_hr else None
        if taught is not None:  # the person's own lag: the sign of the peak there, if clear
            j = _extremum_near(c, taught)
            if abs(c[j]) >= FLIP_MIN:
                sign, sure, how = (1.0 if c[j] >= 0 else -1.0), True, "a taught lag"
            else:
                taught = None
        held = self.signs[ks[0]]
        if held == 0:
            if self._updates >= SIGN_FORCE_UPDATES or (self._updates >= SIGN_MIN_UPDATES and sure):
                if not sure and have_hr:  # little evidence: the sign of the correlation's
                    j = _extremum_near(c, SIGN_PRIOR_LAG_S)  # peak nearest the prior lag
                    sign, how = (1.0 if c[j] >= 0 else -1.0), "population lag"
                self.signs[ks] = sign * r
                j = int(np.argmax(sign * c))
                # a lag taken from a clear correlation only (else: unknown)
                lag = float(LAG_GRID_S[j]) if have_hr and sign * c[j] >= LAG_MIN_CORR else math.nan
                self.lags_s[ks] = lag
                log.info("%s: polarity %+d by %s (heart rate %.2f s behind)",
                         self.label, sign, how, lag)
            return
        self.signs[ks] = held * r  # sources' relative signs may settle meanwhile
        if have_hr:
            # the held lag follows slow drifts of the sign-consistent peak
            lag = self.lags_s[ks[0]]
            j = int(np.argmin(np.abs(LAG_GRID_S - (lag if math.isfinite(lag) else
                                                    POPULATION_LAG_S))))
            near = slice(max(j - 2, 0), j + 3)
            j = near.start + int(np.argmax(held * c[near]))
            self.lags_s[ks] = float(LAG_GRID_S[j]) if held * c[j] >= LAG_MIN_CORR else math.nan
            near = slice(max(j - 2, 0), j + 3)
            # only a clear lag shows a turned strap (weak correlations swing either way)
            if taught is not None:  # its sign there (corrects one decided before it was taught)
                against = sign != held
            elif math.isfinite(self.lags_s[ks[0]]):
                against = float(np.max(held * c_short[near])) <= -FLIP_MIN
            else:  # no clear lag: the long-term sign at the prior lag, if it is not weak
                k = int(np.argmin(np.abs(LAG_GRID_S - SIGN_PRIOR_LAG_S)))
                against = held * c[k] <= -FLIP_MIN
            # a lag moves with the rate (the couple converging, a partner slowing down);
            # the shape does not: while the recent shape clearly agrees with the held
            # sign, a changed lag is no evidence of a turned strap (without this veto
            # the two kinds of evidence took turns flipping the sign)
            if shape_known and held * skew_short >= SKEW_MIN:
                against = False
        else:
            against = shape_known and -held * skew_short >= SKEW_MIN
        # sure long-term evidence of the shape against the held sign (an early decision
        # on little evidence, e.g. a lag taken half a breath off) counts as well
        against = against or (sure and sign != held and how == "asymmetry")
        self._contrary += UPDATE_S if against else -self._contrary
        if self._contrary >= FLIP_HOLD_S:
            self.signs[ks] = -held * r
            # the long-term memory mixes both orientations: start it from the recent one
            self._xc[ks] = self._xc_short[ks]
            self._skew[ks] = self._skew_short[ks]
            self.shape_flipped = self.shape_skew is not None  # its owner restarts it
            self._contrary = 0.0
            self.flips += 1
            why = "the person's lag as taught" if taught is not None else "strap turned over?"
            log.warning("%s: polarity changed to %+d (%s)", self.label, -held, why)

    def confidence(self) -> float:
        """Long-term spectral quality of the best source the window fuses, drawn toward
        :data:`CONFIDENCE_PRIOR` while few independent windows have been seen (a couple
        of windows of noise can look like a breath)."""
        q = float(self._q[self._used].max()) if self._used.size else 0.0
        n = min(self._updates * UPDATE_S, QUALITY_TAU_S) / self.window_s
        return (n * q + CONFIDENCE_PRIOR) / (n + 1.0)

    def signs_known(self) -> bool:
        """Whether every source in use has an established polarity."""
        used = self._used[self._used > 0] if len(self._t) > 1 else self._used[:0]
        live = [k for k in used.tolist() if self._t[k].size]
        return all(self.signs[k] != 0 for k in live)

    def rsa_lag_s(self) -> float | None:
        """Learned lag of heart rate behind the breath (the best established source),
        None while unknown."""
        known = [k for k in range(1, len(self._t)) if math.isfinite(self.lags_s[k])]
        if not known:
            return None
        k = max(known, key=lambda k: abs(self._xc[k]).max())
        return float(self.lags_s[k])

    def _commit(self, b: Breaths, t_s: float) -> None:
        """Keep events a period old (settled, away from the window's edge), once each."""
        period = 60.0 / (self.rate_bpm() or 12.0)
        for new, kept in ((b.onset_s, self.onsets), (b.exhale_s, self.exhales)):
            for t in new[new <= t_s - period].tolist():
                if not kept or t > kept[-1] + 0.5 * period:
                    kept.append(t)

    def rate_bpm(self, t_s: float | None = None, cycles: int | None = None) -> float | None:
        """Rate from the newest ``cycles`` (default: the window's) onset and exhale
        cycles, the median of their periods; None if unknown or stale."""
        st = self.state
        if st is None:
            return None
        n = (cycles or self.cycles) + 1
        if n not in self._periods:  # (median period, newest event) of this analysis
            self._periods[n] = _median_period(st, n)
        found = self._periods[n]
        if found is None:
            return None
        period, newest = found
        if (t_s if t_s is not None else st.t_s) - newest > STALE_PERIODS * period + UPDATE_S:
            return None
        return 60.0 / period

    def phase(self, t_s: float, delay_s: float = 0.0) -> float | None:
        """Phase in [0, 2*pi) at ``t_s``, from the newest breath events and the wave's
        last period.

        Each event has its place in the breath: mid-inhale pi f, exhale onset (end of
        inspiration, the wave's peak) 2 pi f, mid-exhale pi (1 + f), f = the window's
        median inhale fraction; the newest :data:`PHASE_EVENTS` of them, each carried
        to ``t_s`` at the current rate. The inhale onset (the trough) is not used: a
        slow breath's long flat end of expiration makes it early. Beside them, the
        wave's own phase at its newest sample (:func:`_echt_phase`, an endpoint-corrected
        Hilbert transform, its quarter-cycles mapped onto the breath's by
        :func:`_breath_phase`): the events read a band-limited asymmetric breath a little
        ahead, the analytic phase (its band-pass lags the rate by ~20 deg) a little
        behind (docs/breathing.md, "Live phase from breath events"); the phase is the
        circular mean of the two (:func:`_live_phase`). ``delay_s``: how late the wave
        shows a breath (e.g. the heart-rate lag).
        """
        r = self.rate_bpm(t_s, self.phase_cycles)
        st = self._crossed()
        if r is None or st is None or not self.signs_known():
            return None  # unknown beats inverted
        return _live_phase(st, r, self._inhale_fraction(st), t_s + delay_s, self.fs_hz,
                           *self.echt)

    def _crossed(self) -> WindowState | None:
        """The state with the mid-crossings of its phase wave (found once per analysis)."""
        if self._crossings is not None and self.state is not None:
            wave, t0, pb = self._crossings
            self._crossings = None
            rise, fall = _mid_crossings(wave, self.fs_hz, t0, pb)
            self.state = dataclasses.replace(self.state, rise_s=rise, fall_s=fall)
        return self.state

    @staticmethod
    def _inhale_fraction(st: WindowState) -> float:
        """Median inhale fraction of the window's breaths, from the peak (end of
        inspiration) and the mid-crossings either side of it: half a period apart
        whatever the fraction, with the peak f of that half-period after the rise.
        Not from the trough, which a slow breath's long flat end of expiration
        makes early (at 5/min by a second: a fraction of 0.3 read as 0.44)."""
        if st.rise_s.size and st.fall_s.size and st.peak_s.size:
            r = np.searchsorted(st.rise_s, st.peak_s) - 1  # the rise before each peak
            f = np.searchsorted(st.fall_s, st.peak_s)  # the fall after it
            ok = (r >= 0) & (f < st.fall_s.size)
            rise, peak, fall = st.rise_s[r[ok]], st.peak_s[ok], st.fall_s[f[ok]]
            half = fall - rise
            ok = half > 0
            if ok.any():
                frac = median_of_sorted(np.sort((peak[ok] - rise[ok]) / half[ok]))
                return min(max(frac, 0.2), 0.8)
        return 0.4

    def regularity(self) -> float | None:
        """1 - coefficient of variation of the inhale-to-inhale periods in the window."""
        if self.state is None or self.state.onset_s.size < 4:
            return None
        p = np.diff(self.state.onset_s[-7:])
        return min(max(1.0 - float(p.std() / p.mean()), 0.0), 1.0)

    def agreement(self) -> float | None:
        """How well the breathing waves (sources 1..) agree with heart rate (source 0):
        the largest correlation, over the lags of :data:`LAG_GRID_S`, of their fusion
        (held signs, long-term quality weights) with heart rate, over the last windows
        (memory :data:`LAG_TAU_S`, the polarity's own evidence). About 1 where they show
        the same breath; near 0 (or negative) where they carry no breath or disagree with
        the held polarity. None without a weighted breathing source beside heart rate."""
        ks = [k for k in self._used.tolist() if k > 0]
        w = self._q[ks] ** WEIGHT_POWER if ks else np.zeros(0)
        if not ks or w.sum() <= 0 or not self._t[0].size:
            return None
        signs = np.where(self.signs != 0, self.signs, np.where(self._corr >= 0, 1.0, -1.0))
        return float(np.max((w * signs[ks]) @ self._xc[ks]) / w.sum())
