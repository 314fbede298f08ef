"""Breathing from the chest accelerometer, causally, chunk by chunk.

Pipeline: block-average the 3-axis signal down to :data:`BREATH_FS_HZ`; band-pass each
axis to the breathing band (removes gravity and slow posture drift); project on the
dominant axis of a running (exponentially forgetting) covariance, i.e. a running PCA;
fix the polarity so that inhaling is positive, using respiratory sinus arrhythmia
(heart rate rises while the lungs fill); then detect inhale onsets (troughs) and
exhale onsets (peaks) with an amplitude-relative hysteresis.

References
----------
Bates A, Ling MJ, Mann J, Arvind DK. Respiratory rate and flow waveform estimation
from tri-axial accelerometer data. BSN 2010 (PCA of chest acceleration).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import signal

from coach.config import (
    BREATH_AXIS_TAU_S,
    BREATH_BAND_HZ,
    BREATH_FS_HZ,
    BREATH_MIN_PERIOD_S,
)
from coach.types import TWO_PI, AccChunk

RSA_LAG_S = 1.0  # heart rate follows lung volume by about a second
POLARITY_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class BreathEstimate:
    """Where a person is in their breath at one moment. None = unknown."""

    rate_bpm: float | None
    phase: float | None  # radians in [0, 2*pi), 0 at inhale onset
    level: float | None  # breathing wave scaled to about -1..1
    depth: float | None  # peak-to-trough of the breathing wave, sensor units
    regularity: float | None  # 1 - coefficient of variation of recent breath periods


class BreathDetector:
    """Inhale and exhale onsets in a breathing wave, with hysteresis, causally."""

    def __init__(self, min_period_s: float = BREATH_MIN_PERIOD_S) -> None:
        self.min_period_s = min_period_s
        self.inhale_onsets: deque[float] = deque(maxlen=12)
        self.exhale_onsets: deque[float] = deque(maxlen=12)
        self.depths: deque[float] = deque(maxlen=8)
        self._rising = True
        self._ext_t = 0.0
        self._ext_y = 0.0
        self._amp: float | None = None  # running peak-to-trough amplitude
        self._last_peak: float | None = None
        self._last_y = 0.0
        self._warm: list[float] = []

    def push(self, t: np.ndarray, y: np.ndarray) -> None:
        for ti, yi in zip(t.tolist(), y.tolist(), strict=True):
            self._last_y = yi
            if self._amp is None:
                self._warm.append(yi)
                if len(self._warm) >= 8 * BREATH_FS_HZ:
                    self._amp = max(2.0 * math.sqrt(2.0) * float(np.std(self._warm)), 1e-9)
                    self._ext_t, self._ext_y = ti, yi
                continue
            self._step(ti, yi)

    def _step(self, t: float, y: float) -> None:
        assert self._amp is not None
        h = 0.3 * self._amp
        if self._rising:
            if y > self._ext_y:
                self._ext_t, self._ext_y = t, y
            elif y < self._ext_y - h:
                self.exhale_onsets.append(self._ext_t)
                self._last_peak = self._ext_y
                self._rising = False
                self._ext_t, self._ext_y = t, y
        else:
            if y < self._ext_y:
                self._ext_t, self._ext_y = t, y
            elif y > self._ext_y + h:
                self._trough(self._ext_t, self._ext_y)
                self._rising = True
                self._ext_t, self._ext_y = t, y

    def _trough(self, t: float, y: float) -> None:
        if self.inhale_onsets and t - self.inhale_onsets[-1] < self.min_period_s:
            return
        self.inhale_onsets.append(t)
        if self._last_peak is not None:
            depth = self._last_peak - y
            self.depths.append(depth)
            assert self._amp is not None
            self._amp += 0.2 * (depth - self._amp)

    def estimate(self, t_s: float) -> BreathEstimate:
        level = None
        if self._amp:
            level = float(np.clip(2.0 * self._last_y / self._amp, -1.5, 1.5))
        onsets = list(self.inhale_onsets)
        if len(onsets) < 3:
            return BreathEstimate(None, None, level, None, None)
        periods = np.diff(onsets[-6:])
        period = float(np.median(periods))
        if t_s - onsets[-1] > 3.0 * period:  # the breathing wave has gone flat or lost
            return BreathEstimate(None, None, level, None, None)
        phase = (TWO_PI * (t_s - onsets[-1]) / period) % TWO_PI
        regularity = float(np.clip(1.0 - np.std(periods) / np.mean(periods), 0.0, 1.0))
        depth = float(np.median(self.depths)) if self.depths else None
        return BreathEstimate(60.0 / period, phase, level, depth, regularity)


class AccBreath:
    """Causal breathing estimator for one chest accelerometer."""

    def __init__(self, fs_out_hz: float = BREATH_FS_HZ) -> None:
        self.fs_hz = fs_out_hz
        self._sos = signal.butter(2, BREATH_BAND_HZ, btype="bandpass", fs=fs_out_hz, output="sos")
        self._zi: np.ndarray | None = None
        self._block: int | None = None
        self._leftover = np.zeros((0, 3))
        self._next_t: float | None = None
        self._cov = np.eye(3) * 1e-6
        self._axis = np.array([0.0, 0.0, 1.0])
        self._polarity = 1.0
        self._wave: deque[tuple[float, float]] = deque(maxlen=int(POLARITY_WINDOW_S * fs_out_hz))
        self._beats: deque[tuple[float, float]] = deque(maxlen=120)
        self._since_polarity = 0
        self.detector = BreathDetector()

    def push(self, chunk: AccChunk) -> None:
        """Feed one accelerometer chunk."""
        if self._block is None:
            self._block = max(1, round(chunk.fs_hz / self.fs_hz))
        if self._next_t is None or not len(self._leftover):
            self._next_t = chunk.t_s - len(self._leftover) / chunk.fs_hz
        x = np.concatenate([self._leftover, chunk.acc_mg])
        n = len(x) // self._block
        self._leftover = x[n * self._block :]
        if n == 0:
            return
        xd = x[: n * self._block].reshape(n, self._block, 3).mean(axis=1)
        dt = self._block / chunk.fs_hz
        t = self._next_t + (np.arange(n) + 0.5) * dt
        self._next_t += n * dt
        self._process(t, xd)

    def _process(self, t: np.ndarray, xd: np.ndarray) -> None:
        if self._zi is None:
            self._zi = signal.sosfilt_zi(self._sos)[:, :, None] * xd[0][None, None, :]
        filt, self._zi = signal.sosfilt(self._sos, xd, axis=0, zi=self._zi)
        alpha = math.exp(-len(filt) / (BREATH_AXIS_TAU_S * self.fs_hz))
        self._cov = alpha * self._cov + (1 - alpha) * (filt.T @ filt) / len(filt)
        axis = np.linalg.eigh(self._cov)[1][:, -1]
        if float(axis @ self._axis) < 0:
            axis = -axis
        self._axis = axis
        y = filt @ axis
        self._wave.extend(zip(t.tolist(), y.tolist(), strict=True))
        self._since_polarity += len(y)
        if self._since_polarity >= 10 * self.fs_hz:
            self._since_polarity = 0
            self._update_polarity()
        self.detector.push(t, self._polarity * y)

    def push_beats(self, beat_t_s: tuple[float, ...], rr_ms: tuple[float, ...]) -> None:
        """Heart beats, used only to tell inhale from exhale (RSA)."""
        self._beats.extend(zip(beat_t_s, rr_ms, strict=True))

    def _update_polarity(self) -> None:
        if len(self._beats) < 20 or len(self._wave) < 10 * self.fs_hz:
            return
        wt, wy = np.array(self._wave).T
        bt, rr = np.array(self._beats).T
        ok = (bt - RSA_LAG_S > wt[0]) & (bt - RSA_LAG_S < wt[-1])
        if ok.sum() < 15:
            return
        hr = 60000.0 / rr[ok]
        y_then = np.interp(bt[ok] - RSA_LAG_S, wt, wy)
        corr = float(np.corrcoef(hr - hr.mean(), y_then)[0, 1])
        sign = 1.0 if corr > 0 else -1.0
        if sign != self._polarity and abs(corr) > 0.2:
            self._polarity = sign
            self.detector = BreathDetector()

    def estimate(self, t_s: float) -> BreathEstimate:
        return self.detector.estimate(t_s)
