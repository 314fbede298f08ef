"""Heart rhythm coherence: how much of heart rate variability sits in one slow rhythm.

Every :data:`COHERENCE_EVERY_S` seconds, over the last :data:`COHERENCE_WINDOW_S` seconds
of RR intervals: resample instantaneous heart rate at 4 Hz, remove the mean and linear
trend, apply a Hann window and take the power spectrum. Find the highest peak between
0.04 and 0.26 Hz; the peak power is the power within +-0.015 Hz of it; the total power is
that between 0.0033 and 0.4 Hz. The coherence ratio is peak / (total - peak): about 0.5
or less for ordinary resting variability, above 1 when breathing slowly and evenly and
above 3 for a strongly coherent rhythm.

References
----------
McCraty R, Atkinson M, Tomasino D, Bradley RT. The coherent heart: heart-brain
interactions, psychophysiological coherence, and the emergence of system-wide order.
Integral Review 5(2):10-115, 2009 (coherence ratio, 64 s windows, 0.04-0.26 Hz peak).
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np

COHERENCE_WINDOW_S: Final = 64.0  # seconds of RR
COHERENCE_EVERY_S: Final = 5.0  # seconds between updates
COHERENCE_FS_HZ: Final = 4.0  # Hz, resampling
PEAK_BAND_HZ: Final = (0.04, 0.26)
PEAK_HALF_WIDTH_HZ: Final = 0.015
TOTAL_BAND_HZ: Final = (0.0033, 0.4)


@functools.lru_cache(maxsize=8)
def _layout(n: int, fs_hz: float) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """Centred sample times, Hann window, FFT length, frequencies, and the peak and total
    bands' masks, for series of ``n`` samples."""
    t = np.arange(n) - (n - 1) / 2.0
    n_fft = max(1024, n)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs_hz)
    in_peak_band = (freqs >= PEAK_BAND_HZ[0]) & (freqs <= PEAK_BAND_HZ[1])
    in_total = (freqs >= TOTAL_BAND_HZ[0]) & (freqs <= TOTAL_BAND_HZ[1])
    return t, np.hanning(n), n_fft, freqs, np.vstack([in_peak_band, in_total])


def hrv_coherence(hr_bpm: np.ndarray, fs_hz: float = COHERENCE_FS_HZ) -> float | None:
    """Coherence ratio of an evenly sampled heart-rate series (None if it is flat)."""
    y = np.asarray(hr_bpm, dtype=float)
    t, hann, n_fft, freqs, (in_peak_band, in_total) = _layout(len(y), fs_hz)
    y = y - y.mean()
    x = y - t * (float(t @ y) / float(t @ t)) if len(y) > 1 else y  # least-squares detrend
    spectrum = np.abs(np.fft.rfft(x * hann, n_fft)) ** 2
    peak_f = freqs[in_peak_band][np.argmax(spectrum[in_peak_band])]
    near_peak = np.abs(freqs - peak_f) <= PEAK_HALF_WIDTH_HZ
    peak = float(spectrum[near_peak & in_total].sum())
    total = float(spectrum[in_total].sum())
    if total <= 0 or total - peak <= 0:
        return None
    return peak / (total - peak)
