"""Breathing analysis of recorded ECG, R-R or accelerometer data, offline or causal.

Offline analysis uses zero-phase filters and the whole recording. Causal analysis
replays the recording through the live estimators chunk by chunk (what the orb would
have seen): its rate at second ``t`` uses only data up to ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from scipy import signal

from coach import respiration as resp
from coach.breath import BreathEstimator
from coach.config import BREATH_BAND_HZ, STATE_PERIOD_S
from coach.ecg import ecg_peaks
from coach.rr import beats_to_wave, rr_beat_times, rr_clean, rsa_points
from coach.types import AccChunk, EcgChunk

FS: Final = resp.WAVE_FS_HZ
CHUNK_S: Final = 1.0  # s, chunk length of the causal replay
PHASE_STEP_S: Final = STATE_PERIOD_S  # s between phases reported (as often as the session's)


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
        out: dict[str, Any] = {
            "source": self.source, "breaths": breaths, "rate": rate, "mean_bpm": mean}
        if self.phase_t_s.size:  # causal: the live phase, None while unknown
            out["phase"] = [
                {"t_s": round(float(t), 3), "phase": None if math.isnan(p) else round(float(p), 4)}
                for t, p in zip(self.phase_t_s, self.phase, strict=True)
            ]
        return out


def _offline(
    waves: list[tuple[float, np.ndarray]], end_s: float, source: str,
    span_s: float = resp.LOCAL_SPAN_S,
) -> Analysis:
    """Fuse waves that share the 4 Hz grid, then count breaths (amplitude threshold
    over +-``span_s``)."""
    waves = [(t0, w) for t0, w in waves if w.size > 8 * FS]
    grid = np.arange(0.0, math.floor(end_s) + 1.0)
    if not waves:
        return Analysis(np.empty(0), np.empty(0), grid, np.full(grid.size, np.nan), source)
    t0 = max(t for t, _ in waves)
    cut = [w[round((t0 - t) * FS) :] for t, w in waves]
    n = min(c.size for c in cut)
    clean = [resp.resp_clean(c[:n], FS) for c in cut]
    weights = [resp.resp_quality(c, FS)[1] for c in clean]
    b = resp.resp_breaths(resp.resp_fuse(clean, weights), FS, t0, span_s)
    return Analysis(b.onset_s, b.exhale_s, grid, resp.resp_rate(b, grid), source)


def ecg_waves(
    beat_t_s: np.ndarray, morph: np.ndarray, area: np.ndarray
) -> list[tuple[float, np.ndarray]]:
    """RSA, QRS-morphology and QRS-area waves on the 4 Hz grid (RSA first: known sign),
    the waves the live ECG window fuses."""
    t, rr = rr_clean(beat_t_s[1:], np.diff(beat_t_s) * 1000.0)
    return [
        beats_to_wave(*rsa_points(t, rr)),
        beats_to_wave(beat_t_s, morph),
        beats_to_wave(beat_t_s, area),
    ]


def analyze_ecg(
    ecg_uv: np.ndarray, fs_hz: float, causal: bool = False, span_s: float = resp.LOCAL_SPAN_S
) -> Analysis:
    """Breathing from ECG: RSA fused with the QRS-morphology score and QRS area (EDR)."""
    end_s = ecg_uv.size / fs_hz
    if causal:
        est = BreathEstimator()
        n = round(CHUNK_S * fs_hz)
        chunks = (
            (lambda i=i: est.push_ecg(EcgChunk(i / fs_hz, "A", fs_hz, ecg_uv[i : i + n])))
            for i in range(0, ecg_uv.size, n)
        )
        return _replay(est, chunks, end_s, "ecg")
    b = ecg_peaks(ecg_uv, fs_hz)
    if b.t_s.size < 3:
        return _offline([], end_s, "ecg")
    return _offline(ecg_waves(b.t_s, b.morph_uv, b.area_uvs), end_s, "ecg", span_s)


def analyze_rr(
    rr_ms: np.ndarray, causal: bool = False, span_s: float = resp.LOCAL_SPAN_S
) -> Analysis:
    """Breathing from R-R intervals alone (RSA); beat times are the running sum."""
    rr = np.asarray(rr_ms, dtype=np.float64)
    t = rr_beat_times(rr)
    end_s = float(t[-1]) if t.size else 0.0
    if causal:
        est = BreathEstimator()
        edges = np.searchsorted(t, np.arange(1.0, math.floor(end_s) + 1.0), side="right")
        starts = np.concatenate([[0], edges[:-1]])
        chunks = (
            (lambda a=a, b=b: est.push_beats(tuple(t[a:b]), tuple(rr[a:b])))
            for a, b in zip(starts.tolist(), edges.tolist(), strict=True)
        )
        return _replay(est, chunks, end_s, "rr", chunk_s=1.0)
    tc, rc = rr_clean(t, rr)
    return _offline([beats_to_wave(*rsa_points(tc, rc))], end_s, "rr", span_s)


def analyze_acc(acc_mg: np.ndarray, fs_hz: float, causal: bool = False) -> Analysis:
    """Breathing from chest acceleration: band-limited, projected on the main axis (PCA)."""
    end_s = acc_mg.shape[0] / fs_hz
    if causal:
        est = BreathEstimator()
        n = round(CHUNK_S * fs_hz)
        chunks = (
            (lambda i=i: est.push_acc(AccChunk(i / fs_hz, "A", fs_hz, acc_mg[i : i + n])))
            for i in range(0, acc_mg.shape[0], n)
        )
        return _replay(est, chunks, end_s, "acc")
    q = max(1, int(fs_hz // (4 * FS)))
    sos = signal.butter(4, 0.8, fs=fs_hz, output="sos")
    low = signal.sosfiltfilt(sos, acc_mg - acc_mg.mean(axis=0), axis=0)[::q]
    fs = fs_hz / q
    clean = np.column_stack(
        [resp.resp_clean(low[:, k], fs, band_hz=BREATH_BAND_HZ) for k in range(3)]
    )
    _, _, vt = np.linalg.svd(clean - clean.mean(axis=0), full_matrices=False)
    b = resp.resp_breaths(clean @ vt[0], fs, 0.0)
    grid = np.arange(0.0, math.floor(end_s) + 1.0)
    return Analysis(b.onset_s, b.exhale_s, grid, resp.resp_rate(b, grid), "acc")


# ----------------------------------------------------------------------------- causal


def _replay(
    est: BreathEstimator,
    chunks: Iterator[Callable[[], None]],
    end_s: float,
    source: str,
    chunk_s: float = CHUNK_S,
) -> Analysis:
    """Feed one-second chunks; sample the rate once a second and the phase every
    :data:`PHASE_STEP_S`, as a session state carries it (0.1 s)."""
    rate_t, rate, ph_t, ph = [], [], [], []
    onsets: list[float] = []  # every breath the live estimator committed (its own
    exhales: list[float] = []  # memory of them is bounded)
    t_end, k = 0.0, 0  # k: phases reported so far (on the grid k x PHASE_STEP_S)
    for feed in chunks:
        feed()
        t_end = min(t_end + chunk_s, end_s)
        k_end = math.floor(t_end / PHASE_STEP_S + 1e-6)
        updated = False
        for t in (PHASE_STEP_S * np.arange(k + 1, k_end + 1)).tolist():
            if t >= t_end - 1e-6:
                est.update(t_end)  # earlier phases extrapolate the previous update
                updated = True
            e = est.estimate(t)
            ph_t.append(t)
            ph.append(math.nan if e.phase is None else e.phase)
        k = k_end
        if not updated:  # a chunk end off the grid (the last one)
            est.update(t_end)
            e = est.estimate(t_end)
        rate_t.append(t_end)
        rate.append(math.nan if e.rate_bpm is None else e.rate_bpm)
        w = est.windows[source]
        onsets += [t for t in w.onsets if not onsets or t > onsets[-1]]
        exhales += [t for t in w.exhales if not exhales or t > exhales[-1]]
    return Analysis(
        np.array(onsets),
        np.array(exhales),
        np.array(rate_t),
        np.array(rate),
        source,
        np.array(ph_t),
        np.array(ph),
    )
