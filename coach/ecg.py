"""ECG: a real-time R-peak detector and ECG-derived respiration (EDR).

:class:`RPeakDetector` follows Pan & Tompkins [1]_ chunk by chunk: a 5-18 Hz
band-pass, derivative, squaring, a 150 ms moving integral, adaptive signal/noise
peak levels, a 250 ms refractory period and search-back after a missed beat. Each R
peak is then placed on a 0.5-40 Hz cleaned ECG, where its amplitude (R minus the
lowest point within 100 ms, i.e. the R-S swing), QRS area and QRS-morphology score (the
first principal component of the beat-to-beat change of the QRS [4]_) are measured: all
are modulated by breathing through the chest's impedance and the heart's axis [2]_[3]_.
The breath estimators fuse the morphology score and the area (the R-S amplitude is kept
for comparison, bench/ecg_waves.py).

Offline analysis runs the same detector over the whole recording, one second at a time.

References
----------
.. [1] Pan J, Tompkins WJ. A real-time QRS detection algorithm. IEEE Trans Biomed Eng.
   1985;32(3):230-236.
.. [2] Moody GB, Mark RG, Zoccola A, Mantero S. Derivation of respiratory signals from
   multi-lead ECGs. Computers in Cardiology. 1985;12:113-116.
.. [3] Charlton PH, et al. An assessment of algorithms to estimate respiratory rate
   from the electrocardiogram and photoplethysmogram. Physiol Meas. 2016;37(4):610-626.
.. [4] Langley P, Bowers EJ, Murray A. Principal component analysis as a tool for
   analyzing beat-to-beat changes in ECG features: application to ECG-derived
   respiration. IEEE Trans Biomed Eng. 2010;57(4):821-829.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from scipy import signal

from coach.respiration import SosStream

QRS_BAND_HZ: Final = (5.0, 18.0)  # Hz, QRS energy [1]
CLEAN_BAND_HZ: Final = (0.5, 40.0)  # Hz, ECG for amplitudes
INTEGRATION_S: Final = 0.15  # s, moving-window integral [1]
REFRACTORY_S: Final = 0.25  # s [1]
SETTLE_S: Final = 0.25  # s, a candidate is judged once this much signal follows it
BUFFER_S: Final = 3.0  # s of filtered signal kept
LEARN_S: Final = 2.0  # s, initial learning phase [1]
SEARCHBACK: Final = 1.66  # x mean RR: look again for a missed beat [1]
# QRS morphology (Langley et al. 2010 [4]): each QRS, +-MORPH_HALF_S around its R peak
# (located between samples), as MORPH_POINTS values; a running PCA over beats
MORPH_HALF_S: Final = 0.1  # s
MORPH_POINTS: Final = 25  # odd: the median is the middle one
MORPH_TAU_BEATS: Final = 60.0  # beats, memory of the running mean beat and covariance


@dataclass(frozen=True, slots=True)
class Beats:
    """R peaks: times (s), R-S amplitude (uV), QRS area (uV*s) and the QRS-morphology
    score (uV: the beat's departure from the running mean beat along its first principal
    component)."""

    t_s: np.ndarray
    amp_uv: np.ndarray
    area_uvs: np.ndarray
    morph_uv: np.ndarray = field(default_factory=lambda: np.empty(0))


class RPeakDetector:
    """Causal Pan-Tompkins R-peak detector with bounded state [1]_.

    Beats come out about ``SETTLE_S`` + 75 ms after the R peak.
    """

    def __init__(self, fs_hz: float) -> None:
        self.fs_hz = fs_hz
        self._qrs = SosStream(signal.butter(2, QRS_BAND_HZ, "bandpass", fs=fs_hz, output="sos"))
        self._clean = SosStream(signal.butter(2, CLEAN_BAND_HZ, "bandpass", fs=fs_hz, output="sos"))
        self._win = max(1, round(INTEGRATION_S * fs_hz))
        self._tail = np.zeros(self._win)  # last squared-slope samples for the integral
        self._last_q = 0.0
        self._mwi = np.empty(0)
        self._ecg = np.empty(0)
        self._start = 0  # absolute index of the buffers' first sample
        self._n = 0  # samples seen
        self._upto = 0  # absolute index up to which candidates were judged
        self._spk = self._npk = math.nan
        self._polarity = 1.0
        self._last_beat = -(10**9)
        self._rr = 0.8 * fs_hz
        self._noise: list[tuple[int, float]] = []
        # (absolute index, time) of each chunk's first sample still in the buffers
        self._anchor_i: list[int] = []
        self._anchor_t: list[float] = []
        self._morph = QrsMorphology()

    def process(self, ecg_uv: np.ndarray, t0_s: float) -> Beats:
        """Feed samples whose first is at ``t0_s``; return the beats confirmed."""
        return self.process_chunks([(ecg_uv, t0_s)])

    def process_chunks(self, chunks: Sequence[tuple[np.ndarray, float]]) -> Beats:
        """Feed chunks (samples, time of the first) in one pass; return the beats confirmed.

        A beat's time comes from the chunk it lies in, so a gap between chunks (frames
        lost, a reconnection) does not shift the beats after it.
        """
        n = self._n
        for samples, t0_s in chunks:
            if len(samples):
                self._anchor_i.append(n)
                self._anchor_t.append(t0_s)
                n += len(samples)
        if n == self._n:
            return self._measure([])
        x = np.concatenate([np.asarray(s, dtype=np.float64) for s, _ in chunks])
        q = self._qrs.process(x)
        dq = np.empty_like(q)  # np.diff(q, prepend=last), without its overhead
        dq[0] = q[0] - self._last_q
        np.subtract(q[1:], q[:-1], out=dq[1:])
        self._last_q = float(q[-1])
        sq = np.concatenate([self._tail, dq * dq])
        mwi = np.convolve(sq, np.ones(self._win) / self._win, "valid")[1:]
        self._tail = sq[-self._win :]
        self._mwi = np.concatenate([self._mwi, mwi])
        self._ecg = np.concatenate([self._ecg, self._clean.process(x)])
        self._n += x.size
        beats = self._measure(self._judge()) if self._n >= LEARN_S * self.fs_hz else None
        self._trim()
        return beats if beats is not None else self._measure([])

    def _learn(self) -> None:
        n = round(LEARN_S * self.fs_hz)
        self._spk = 0.5 * float(np.max(self._mwi[:n]))
        self._npk = float(np.mean(self._mwi[:n]))
        e = self._ecg[round(0.5 * self.fs_hz) : n]
        self._polarity = 1.0 if e.size == 0 or e.max() >= -e.min() else -1.0
        self._upto = self._start

    def _judge(self) -> list[int]:
        if math.isnan(self._spk):
            self._learn()
        end = self._n - round(SETTLE_S * self.fs_hz)
        lo = max(self._upto, self._start + 1) - self._start
        seg = self._mwi[: end - self._start + 1]
        peaks, _ = signal.find_peaks(seg, distance=max(1, round(0.2 * self.fs_hz)))
        beats: list[int] = []
        for p in peaks[peaks >= lo]:
            beats += self._candidate(int(p) + self._start, float(seg[p]))
        self._upto = max(self._upto, end)
        if self._upto - self._last_beat > SEARCHBACK * self._rr and self._noise:
            i, v = max(self._noise, key=lambda c: c[1])
            if v > 0.5 * self._threshold() and i - self._last_beat > REFRACTORY_S * self.fs_hz:
                self._spk = 0.25 * v + 0.75 * self._spk
                beats.append(self._accept(i))
        return beats

    def _threshold(self) -> float:
        return self._npk + 0.25 * (self._spk - self._npk)

    def _candidate(self, i: int, v: float) -> list[int]:
        if v > self._threshold() and i - self._last_beat > REFRACTORY_S * self.fs_hz:
            self._spk = 0.125 * v + 0.875 * self._spk
            return [self._accept(i)]
        self._npk = 0.125 * v + 0.875 * self._npk
        self._noise.append((i, v))
        return []

    def _accept(self, i: int) -> int:
        if self._last_beat > 0:
            rr = i - self._last_beat
            if rr < 3 * self._rr:
                self._rr = 0.875 * self._rr + 0.125 * rr
        self._last_beat = i
        self._noise = []
        return i

    def _trim(self) -> None:
        drop = self._mwi.size - round(BUFFER_S * self.fs_hz)
        if drop > 0:
            self._mwi, self._ecg = self._mwi[drop:], self._ecg[drop:]
            self._start += drop
            self._noise = [c for c in self._noise if c[0] >= self._start]
            k = bisect.bisect_right(self._anchor_i, self._start) - 1
            if k > 0:  # keep the anchor of the chunk the buffers now start in
                del self._anchor_i[:k], self._anchor_t[:k]

    def _measure(self, idx: list[int]) -> Beats:
        """Place each beat on the cleaned ECG and measure amplitude and area."""
        fs, e = self.fs_hz, self._ecg * self._polarity
        back, half = round(0.25 * fs), round(0.1 * fs)
        t, amp, area, morph = [], [], [], []
        for i in idx:
            a = max(i - self._start - back, 0)
            b = min(i - self._start + 1, e.size)
            if b - a < 3:
                continue
            r = a + int(np.argmax(e[a:b]))
            win = e[max(r - half, 0) : r + half + 1]
            qrs = e[max(r - half // 2, 0) : r + half // 2 + 1]
            i = r + self._start
            k = bisect.bisect_right(self._anchor_i, i) - 1
            t.append(self._anchor_t[k] + (i - self._anchor_i[k]) / fs)
            amp.append(e[r] - win.min())
            area.append(float(np.sum(qrs - win.min())) / fs)
            morph.append(self._morph.score(e, r, fs))
        return Beats(np.array(t), np.array(amp), np.array(area), np.array(morph))


class QrsMorphology:
    """Beat-to-beat change of the QRS shape, its first principal component [4]_.

    Each QRS is sampled at :data:`MORPH_POINTS` times over +-:data:`MORPH_HALF_S` around
    its R peak, the peak placed between samples by a parabola through its three highest
    (at 130 Hz, the R peak's position within a sample would otherwise be the largest
    change from beat to beat), less its median. A running mean beat and covariance
    (memory :data:`MORPH_TAU_BEATS`) give the main direction of change; the score is the
    beat's departure from the mean beat along it, signed so that a beat larger than
    average in the shape of the mean beat scores positive. Breathing moves the heart's
    axis and the chest's impedance, so the score follows the breath; unlike the R-S
    amplitude it weighs every part of the QRS by how much it actually changes.
    """

    def __init__(self) -> None:
        self._offsets = np.linspace(-MORPH_HALF_S, MORPH_HALF_S, MORPH_POINTS)
        self._mean = np.zeros(MORPH_POINTS)
        self._cov = np.zeros((MORPH_POINTS, MORPH_POINTS))
        self._n = 0

    def score(self, e: np.ndarray, r: int, fs_hz: float) -> float:
        """Score of the beat whose R peak is sample ``r`` of the cleaned ECG ``e``
        (0 when its QRS is not all in ``e``)."""
        h = math.ceil(MORPH_HALF_S * fs_hz) + 1
        if r - h < 0 or r + h >= e.size:
            return 0.0
        y0, y1, y2 = float(e[r - 1]), float(e[r]), float(e[r + 1])
        curve = y0 - 2.0 * y1 + y2
        d = min(max(0.5 * (y0 - y2) / curve, -0.5), 0.5) if curve < 0 else 0.0
        seg = e[r - h : r + h + 1]
        beat = np.interp(h + d + self._offsets * fs_hz, np.arange(seg.size), seg)
        beat -= np.partition(beat, MORPH_POINTS // 2)[MORPH_POINTS // 2]  # its median
        self._n += 1
        a = max(1.0 / self._n, 1.0 / MORPH_TAU_BEATS)
        dev = beat - self._mean
        self._mean += a * dev
        self._cov += a * ((1.0 - a) * np.outer(dev, dev) - self._cov)
        axis = np.linalg.eigh(self._cov)[1][:, -1]
        if float(axis @ self._mean) < 0:
            axis = -axis
        return float((beat - self._mean) @ axis)


STEP_S: Final = 1.0  # s of ECG fed to the detector at a time (offline, and a live backlog)


def ecg_peaks(ecg_uv: np.ndarray, fs_hz: float, t0_s: float = 0.0) -> Beats:
    """Offline R peaks: the real-time detector fed the recording one second at a time [1]_.

    Search-back (a beat missed for 1.66 x the mean R-R) is a rule in time, checked once
    per chunk: fed the whole recording in one chunk, the detector never searched back, and
    a beat level raised by one large artifact lost every beat after it (103 s of a MARSH
    recording) until the next artifact.
    """
    det = RPeakDetector(fs_hz)
    x = np.asarray(ecg_uv, dtype=np.float64)
    n = max(1, round(STEP_S * fs_hz))
    parts = [det.process(x[i : i + n], t0_s + i / fs_hz) for i in range(0, x.size, n)]
    return Beats(
        np.concatenate([np.empty(0)] + [b.t_s for b in parts]),
        np.concatenate([np.empty(0)] + [b.amp_uv for b in parts]),
        np.concatenate([np.empty(0)] + [b.area_uvs for b in parts]),
        np.concatenate([np.empty(0)] + [b.morph_uv for b in parts]),
    )
