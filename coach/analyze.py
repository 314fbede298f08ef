"""Breathing analysis of recorded ECG, R-R or accelerometer data, offline or causal.

Offline analysis uses zero-phase filters and the whole recording. Causal analysis
replays the recording through the live estimators chunk by chunk (what the orb would
have seen): its rate at second ``t`` uses only data up to ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from scipy import signal

from coach import respiration as resp
from coach.ecg import RPeakDetector, ecg_peaks
from coach.rr import BeatResampler, RRCleaner, beats_to_wave, rr_beat_times, rr_clean, rsa_points

FS: Final = resp.WAVE_FS_HZ
CHUNK_S: Final = 1.0  # s, chunk length of the causal replay


@dataclass(frozen=True, slots=True)
class Analysis:
    """Breaths, the rate once a second (NaN = unknown) and the live phase if causal."""

    onset_s: np.ndarray
    exhale_s: np.ndarray
    rate_t_s: np.ndarray
    rate_bpm: np.ndarray
    source: str
    phase_t_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    phase: np.ndarray = field(default_factory=lambda: np.empty(0))

    def to_json(self) -> dict[str, Any]:
        breaths = []
        for t in self.onset_s:
            k = np.searchsorted(self.exhale_s, t, side="right")
            ex = float(self.exhale_s[k]) if k < self.exhale_s.size else None
            breaths.append({"onset_s": round(float(t), 3), "exhale_s": ex and round(ex, 3)})
        rate = [
            {"t_s": round(float(t), 3), "bpm": None if math.isnan(b) else round(float(b), 2)}
            for t, b in zip(self.rate_t_s, self.rate_bpm, strict=True)
        ]
        ok = self.rate_bpm[np.isfinite(self.rate_bpm)]
        mean = round(float(ok.mean()), 2) if ok.size else None
        return {"source": self.source, "breaths": breaths, "rate": rate, "mean_bpm": mean}


def _offline(waves: list[tuple[float, np.ndarray]], end_s: float, source: str) -> Analysis:
    """Fuse waves that share the 4 Hz grid, then count breaths."""
    waves = [(t0, w) for t0, w in waves if w.size > 8 * FS]
    grid = np.arange(0.0, math.floor(end_s) + 1.0)
    if not waves:
        return Analysis(np.empty(0), np.empty(0), grid, np.full(grid.size, np.nan), source)
    t0 = max(t for t, _ in waves)
    cut = [w[round((t0 - t) * FS) :] for t, w in waves]
    n = min(c.size for c in cut)
    clean = [resp.resp_clean(c[:n], FS) for c in cut]
    weights = [resp.resp_quality(c, FS)[1] for c in clean]
    b = resp.resp_breaths(resp.resp_fuse(clean, weights), FS, t0)
    return Analysis(b.onset_s, b.exhale_s, grid, resp.resp_rate(b, grid), source)


def ecg_waves(
    beat_t_s: np.ndarray, amp: np.ndarray, area: np.ndarray
) -> list[tuple[float, np.ndarray]]:
    """RSA, R-amplitude and QRS-area waves on the 4 Hz grid (RSA first: known sign)."""
    t, rr = rr_clean(beat_t_s[1:], np.diff(beat_t_s) * 1000.0)
    return [
        beats_to_wave(*rsa_points(t, rr)),
        beats_to_wave(beat_t_s, amp),
        beats_to_wave(beat_t_s, area),
    ]


def analyze_ecg(ecg_uv: np.ndarray, fs_hz: float, causal: bool = False) -> Analysis:
    """Breathing from ECG: RSA fused with R amplitude and QRS area (EDR)."""
    end_s = ecg_uv.size / fs_hz
    if causal:
        return _replay(CausalEcg(fs_hz).process, ecg_uv, fs_hz, end_s, "ecg")
    b = ecg_peaks(ecg_uv, fs_hz)
    if b.t_s.size < 3:
        return _offline([], end_s, "ecg")
    return _offline(ecg_waves(b.t_s, b.amp_uv, b.area_uvs), end_s, "ecg")


def analyze_rr(rr_ms: np.ndarray, causal: bool = False) -> Analysis:
    """Breathing from R-R intervals alone (RSA); beat times are the running sum."""
    t = rr_beat_times(rr_ms)
    end_s = float(t[-1]) if t.size else 0.0
    if causal:
        est = CausalRR()
        return _replay_events(est, t, np.asarray(rr_ms, float), end_s)
    tc, rc = rr_clean(t, rr_ms)
    return _offline([beats_to_wave(*rsa_points(tc, rc))], end_s, "rr")


def analyze_acc(acc_mg: np.ndarray, fs_hz: float, causal: bool = False) -> Analysis:
    """Breathing from chest acceleration: band-limited, projected on the main axis (PCA)."""
    end_s = acc_mg.shape[0] / fs_hz
    q = max(1, int(fs_hz // (4 * FS)))
    sos = signal.butter(4, 0.8, fs=fs_hz, output="sos")
    if causal:
        return _replay(CausalAcc(fs_hz).process, acc_mg, fs_hz, end_s, "acc")
    low = signal.sosfiltfilt(sos, acc_mg - acc_mg.mean(axis=0), axis=0)[::q]
    fs = fs_hz / q
    clean = np.column_stack([resp.resp_clean(low[:, k], fs) for k in range(3)])
    _, _, vt = np.linalg.svd(clean - clean.mean(axis=0), full_matrices=False)
    wave = clean @ vt[0]
    b = resp.resp_breaths(wave, fs, 0.0)
    grid = np.arange(0.0, math.floor(end_s) + 1.0)
    return Analysis(b.onset_s, b.exhale_s, grid, resp.resp_rate(b, grid), "acc")


# ----------------------------------------------------------------------------- causal


class _CausalBase:
    """A tracker plus the events it found."""

    def __init__(self, prefiltered: bool) -> None:
        self.tracker = resp.BreathTracker(FS, prefiltered=prefiltered)
        self.events: list[resp.BreathEvent] = []


class CausalRR(_CausalBase):
    """Live breathing from R-R intervals: clean, RSA wave, track."""

    def __init__(self) -> None:
        super().__init__(prefiltered=False)
        self._cleaner = RRCleaner()
        self._resampler = BeatResampler(FS)

    def push(self, beat_t_s: float, rr_ms: float) -> None:
        for t, r in self._cleaner.push(beat_t_s, rr_ms):
            tp, hr = rsa_points(np.array([t]), np.array([r]))
            t0, w = self._resampler.push(float(tp[0]), float(hr[0]))
            if w.size:
                self.events += self.tracker.process(w, t0)


class CausalEcg(_CausalBase):
    """Live breathing from ECG chunks: R peaks, RSA + EDR waves, causal fusion."""

    def __init__(self, fs_hz: float) -> None:
        super().__init__(prefiltered=True)
        self._detector = RPeakDetector(fs_hz)
        self._rr = RRCleaner()
        self._res = [BeatResampler(FS) for _ in range(3)]
        self._fuser = resp.WaveFuser(3, FS)
        self._t0: float | None = None
        self._last_beat: float | None = None

    def process(self, chunk: np.ndarray, t0_s: float) -> None:
        b = self._detector.process(chunk, t0_s)
        for t, a, s in zip(b.t_s.tolist(), b.amp_uv.tolist(), b.area_uvs.tolist(), strict=True):
            if self._last_beat is not None:
                for tc, rc in self._rr.push(t, 1000.0 * (t - self._last_beat)):
                    tp, hr = rsa_points(np.array([tc]), np.array([rc]))
                    self._feed(0, float(tp[0]), float(hr[0]))
            self._last_beat = t
            self._feed(1, t, a)
            self._feed(2, t, s)
        fused = self._fuser.pop()
        if fused.size and self._t0 is not None:
            self.events += self.tracker.process(fused, self._t0)
            self._t0 += fused.size / FS

    def _feed(self, k: int, t: float, v: float) -> None:
        t_first, w = self._res[k].push(t, v)
        if k == 0 and w.size and self._t0 is None:
            self._t0 = t_first  # the RSA wave starts last: the fused grid starts there
        if self._t0 is None:
            return
        if t_first < self._t0:
            w = w[round((self._t0 - t_first) * FS) :]
        self._fuser.push(k, w)


class CausalAcc(_CausalBase):
    """Live breathing from chest acceleration: low-pass, decimate, running PCA axis."""

    def __init__(self, fs_hz: float) -> None:
        super().__init__(prefiltered=True)
        self._q = max(1, int(fs_hz // (4 * FS)))
        self._fs = fs_hz / self._q
        self._low = resp.SosStream(signal.butter(4, 0.8, fs=fs_hz, output="sos"))
        self._band = resp.SosStream(resp.resp_sos(self._fs))
        self._cov = np.eye(3) * 1e-9
        self._axis = np.array([0.0, 0.0, 1.0])
        self._skip = 0  # samples to skip before the next kept one
        self.tracker = resp.BreathTracker(self._fs, prefiltered=True)

    def process(self, chunk: np.ndarray, t0_s: float) -> None:
        x = self._low.process(chunk)
        idx = np.arange(self._skip, x.shape[0], self._q)
        self._skip = (idx[-1] + self._q - x.shape[0]) if idx.size else self._skip - x.shape[0]
        if not idx.size:
            return
        y = self._band.process(x[idx])
        a = 1.0 / (30.0 * self._fs)
        out = np.empty(y.shape[0])
        for i, v in enumerate(y):
            self._cov += a * (np.outer(v, v) - self._cov)
            if i % 4 == 0:  # the main axis turns slowly: refresh it every 4 samples
                axis = np.linalg.eigh(self._cov)[1][:, -1]
                self._axis = axis if np.dot(axis, self._axis) >= 0 else -axis
            out[i] = float(v @ self._axis)
        self.events += self.tracker.process(out, t0_s + idx[0] / (self._q * self._fs))


def _result(
    est: _CausalBase,
    rate_t: list[float],
    rate: list[float],
    phase_t: list[float],
    phase: list[float],
    source: str,
) -> Analysis:
    on = np.array([e.t_s for e in est.events if e.kind == "onset"])
    ex = np.array([e.t_s for e in est.events if e.kind == "exhale"])
    return Analysis(
        on, ex, np.array(rate_t), np.array(rate), source, np.array(phase_t), np.array(phase)
    )


def _replay(
    step: Callable[[np.ndarray, float], None],
    x: np.ndarray,
    fs_hz: float,
    end_s: float,
    source: str,
) -> Analysis:
    """Feed one-second chunks; sample rate once a second and phase four times a second."""
    est: Any = step.__self__  # type: ignore[attr-defined]
    n = round(CHUNK_S * fs_hz)
    rate_t, rate, ph_t, ph = [], [], [], []
    for i in range(0, x.shape[0], n):
        step(x[i : i + n], i / fs_hz)
        t_end = min(i + n, x.shape[0]) / fs_hz
        for t in np.arange(t_end - CHUNK_S + 0.25, t_end + 1e-9, 0.25):
            ph_t.append(t)
            ph.append(est.tracker.phase(t))
        rate_t.append(t_end)
        rate.append(est.tracker.rate_bpm(t_end))
    return _result(est, rate_t, rate, ph_t, ph, source)


def _replay_events(est: CausalRR, t: np.ndarray, rr: np.ndarray, end_s: float) -> Analysis:
    rate_t, rate, ph_t, ph = [], [], [], []
    k = 0
    for sec in range(1, math.floor(end_s) + 1):
        while k < t.size and t[k] <= sec:
            est.push(float(t[k]), float(rr[k]))
            k += 1
        rate_t.append(float(sec))
        rate.append(est.tracker.rate_bpm(float(sec)))
        ph_t.append(float(sec))
        ph.append(est.tracker.phase(float(sec)))
    return _result(est, rate_t, rate, ph_t, ph, "rr")
