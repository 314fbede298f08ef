"""One partner's breathing, live, from whatever the strap sends: ACC, ECG or RR.

:class:`BreathEstimator` takes accelerometer chunks, ECG chunks and heart beats and
answers "where is this person in their breath now" with the best source it has:

- ``"acc"``: chest accelerometer. :class:`AccWave` block-averages the 3 axes to
  :data:`~coach.config.BREATH_FS_HZ`, holds the wave through sudden changes (posture
  shifts, coughs) and removes the step they leave, band-passes them (removes gravity
  and posture drift) and projects them on the dominant axis of a running covariance
  (a running PCA, Bates et al. 2010 [1]_). Its polarity (inhale up) comes from heart rate, which
  rises on inhaling (RSA).
- ``"ecg"``: R peaks from the real-time detector, RSA from their R-R intervals, fused
  with the QRS-morphology score and QRS area (ECG-derived respiration) by long-term quality.
- ``"rr"``: RSA from the strap's own R-R intervals (every heart-rate strap).

Every source goes through the same breath detection (:class:`coach.respiration.BreathWindow`,
the offline analysis re-run on a trailing window): one detector for all sources.
ACC is used while its quality holds, else ECG, else RR.

References
----------
.. [1] Bates A, Ling MJ, Mann J, Arvind DK. Respiratory rate and flow waveform
   estimation from tri-axial accelerometer data. Int Conf Body Sensor Networks, 2010.
.. [2] Karlen W, Raman S, Ansermino JM, Dumont GA. Multiparameter respiratory rate
   estimation from the photoplethysmogram. IEEE Trans Biomed Eng. 2013;60(7):1946-1953.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import signal

from coach import respiration as resp
from coach.config import BREATH_AXIS_TAU_S, BREATH_BAND_HZ, BREATH_FS_HZ
from coach.ecg import STEP_S, Beats, RPeakDetector
from coach.rr import RRCleaner, rsa_points
from coach.types import TWO_PI, AccChunk, EcgChunk

# long-term spectral quality [2] a source needs to be used and trusted, per source: set
# against a null (the simulator without breathing: chest still, no RSA; band-passed
# white noise) so that noise passes in <= 5 % of windows (docs/breathing.md, "Quality gate")
QUALITY_GATE: Final = {"acc": 0.65, "ecg": 0.65, "rr": 0.65}
TRUST_HOLD_S: Final = 30.0  # s above the gate before the pacer may steer toward a rate
DISAGREE_BPM: Final = 3.0  # /min between chest motion and heart rate (RR) ...
DISAGREE_HOLD_S: Final = 30.0  # ... for this long: they disagree
DISAGREE_FACTOR: Final = 0.5  # confidence kept while they disagree
AGREE_HOLD_S: Final = 10.0  # s of agreement before a disagreement is over
log = logging.getLogger(__name__)

MIN_DATA_S: Final = 30.0  # s after the first data (of any source) before any rate is reported
JUMP_LAG_S: Final = 0.2  # s, span over which a sudden change of acceleration is measured
JUMP_MIN_MG: Final = 20.0  # mG per JUMP_LAG_S: no breath moves the chest this fast
JUMP_FACTOR: Final = 5.0  # x the running rms change per JUMP_LAG_S, if that is larger
JUMP_HOLD_S: Final = 1.0  # s the wave is held after the last sudden change
JUMP_TAU_S: Final = 30.0  # s, memory of the running rms change
# the chest-motion window keeps the breath's first harmonics (up to this x its rate,
# at most ACC_WIDE_HZ, below a resting heart): else the band-limited breath's troughs
# move early (a fast inhale after a slow exhale; docs/breathing.md)
ACC_HARMONICS: Final = 3.0
ACC_WIDE_HZ: Final = 1.0  # Hz
SHAPE_BAND_HZ: Final = (0.05, 2.0)  # Hz: the breath's harmonics, for its asymmetry
SHAPE_SETTLE_S: Final = 15.0  # s of chest motion before its shape is measured
GRAVITY_TAU_S: Final = 20.0  # s, memory of the running mean removed from the chest motion
MAX_PENDING: Final = 32  # chest-motion chunks held before they are processed anyway
ECG_BACKLOG_S: Final = 70.0  # s of ECG kept, unprocessed, while another source serves
ECG_RESTART_S: Final = 5.0  # s: a longer gap before the ECG waiting restarts its detector
SOURCE_SILENT_S: Final = 3.0  # s without data before a source is given up
PHASE_DELAY_S: Final = {"acc": 0.0, "ecg": 0.0}  # s, see docs/breathing.md
# the ECG phase is unknown while its breathing waves (QRS morphology, QRS area) agree with
# heart rate less than this (BreathWindow.agreement): where they carry no breath, heart
# rate alone carries it, late by a lag of the person's own that nothing in the ECG shows.
# Set against a null, waves of band-passed noise beside a simulated heart rate: they pass
# in <= 5 % of analyses (docs/breathing.md, "When the phase is unknown")
PHASE_GATE: Final = 0.35
# the ECG window's live phase: its ecHT band's width (x the rate) and the ecHT phase's weight
# against the events, chosen on MARSH (leave-one-recording-out; docs/breathing.md "Live ECG
# phase vs the impedance wave"); chest motion and RR keep respiration's (the simulator's)
ECG_ECHT: Final = (1.25, 2.0)
SHOWN_SLEW_RAD_S: Final = 1.5  # rad/s: how fast the drawn wave may catch up with the phase


@dataclass(frozen=True, slots=True)
class BreathEstimate:
    """Where a person is in their breath at one moment. None = unknown."""

    rate_bpm: float | None
    phase: float | None  # radians in [0, 2*pi), 0 at inhale onset
    level: float | None  # breathing wave about -1 (empty) .. 1 (full), from the phase
    depth: float | None  # median peak-to-trough of the wave (mG for acc, z units else)
    regularity: float | None  # 1 - coefficient of variation of recent breath periods
    source: str | None = None  # "acc", "ecg" or "rr"
    quality: float | None = None  # [0, 1], spectral prominence of the wave in use
    confidence: float | None = None  # [0, 1], long-term quality (lowered on disagreement)
    trusted: bool = False  # confidence held the gate for TRUST_HOLD_S
    disagree: bool = False  # chest motion and heart rate disagree on the rate
    # [-1, 1], ECG only: agreement of its breathing waves with heart rate; the phase (and
    # the level) is None while it is below PHASE_GATE
    phase_confidence: float | None = None


class AccWave:
    """Chest acceleration to a one-dimensional breathing wave, block by block [1]_.

    Block averages to :data:`BREATH_FS_HZ`, a causal band-pass per axis and a running
    covariance (memory :data:`BREATH_AXIS_TAU_S`) whose main eigenvector is the
    breathing axis, kept from flipping sign between blocks. Vectorised per block (one
    or several chunks from the strap).
    """

    def __init__(self, fs_out_hz: float = BREATH_FS_HZ) -> None:
        self.fs_hz = fs_out_hz
        self.sos = signal.butter(2, BREATH_BAND_HZ, btype="bandpass", fs=fs_out_hz, output="sos")
        self._filter = resp.SosStream(self.sos)
        self._block: int | None = None
        self._leftover = np.zeros((0, 3))
        self._next_t: float | None = None
        self._cov = np.eye(3) * 1e-6
        self.axis = np.array([0.0, 0.0, 1.0])
        self._lag = max(1, round(JUMP_LAG_S * fs_out_hz))
        self._recent = np.zeros((0, 3))  # last decimated samples, for the jump detector
        self._offset = np.zeros(3)  # mG removed so that the wave goes on where it was held
        self._held: np.ndarray | None = None  # value held during a jump, else None
        self._hold_left = 0  # samples still to hold
        self._jump_ms = (JUMP_MIN_MG / JUMP_FACTOR) ** 2  # running mean square change
        self._last: np.ndarray | None = None  # newest output sample
        self._gravity: np.ndarray | None = None  # running mean of each axis (mG)
        # the breath's shape (inhale shorter and steeper than exhale), in a band wide
        # enough for its harmonics: running 2nd and 3rd moments of the wave's slope
        self._shape_filter = resp.SosStream(
            signal.butter(2, SHAPE_BAND_HZ, btype="bandpass", fs=fs_out_hz, output="sos"))
        self._shape_last: float | None = None
        self._shape_n = 0  # slope samples seen
        self._moments = np.zeros((2, 2))  # rows: long, short memory; columns: m2, m3
        self.jumps = 0  # sudden changes seen (posture shifts, coughs, knocks)

    def push_chunks(self, chunks: list[AccChunk]) -> tuple[np.ndarray, np.ndarray]:
        """Feed chunks in order, as one block; return (times, wave) of the new samples."""
        parts = [self._decimate(chunk) for chunk in chunks]
        parts = [p for p in parts if p[0].size]
        if not parts:
            return np.empty(0), np.empty(0)
        t = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        xd = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        n = len(xd)
        xd = self._despike(xd)
        filt = self._filter.process(xd)
        alpha = math.exp(-n / (BREATH_AXIS_TAU_S * self.fs_hz))
        self._cov = alpha * self._cov + (1 - alpha) * (filt.T @ filt) / n
        axis = np.linalg.eigh(self._cov)[1][:, -1]
        self.axis = axis if float(axis @ self.axis) >= 0 else -axis
        # project the unfiltered samples less their slow running mean (gravity: else a
        # change of axis would step the wave): the zero-phase window filter band-limits
        # them later, whereas the causal band-pass would shift the breath's phase
        a = 1.0 / (GRAVITY_TAU_S * self.fs_hz)
        if self._gravity is None:
            self._gravity = xd[0].copy()
        zi = ((1 - a) * self._gravity)[:, None]
        g = signal.lfilter([a], [1.0, a - 1.0], xd, axis=0, zi=zi.T)[0]
        self._gravity = g[-1].copy()
        y = (xd - g) @ self.axis
        self._learn_shape(y)
        return t, y

    def _learn_shape(self, y: np.ndarray) -> None:
        """Running moments of the slope of the wave (band :data:`SHAPE_BAND_HZ`)."""
        w = self._shape_filter.process(y)
        prev = w[:1] if self._shape_last is None else np.array([self._shape_last])
        self._shape_last = float(w[-1])
        d = np.diff(np.concatenate([prev, w]))
        if self._moments[0, 0] > 0:  # a slope far beyond its typical size is an artifact
            lim = 4.0 * math.sqrt(self._moments[0, 0])
            d = np.clip(d, -lim, lim)
        self._shape_n += len(d)
        used = self._shape_n - SHAPE_SETTLE_S * self.fs_hz  # the filters' start is no shape
        if used <= 0:
            return
        new = np.array([np.mean(d * d), np.mean(d * d * d)])
        for row, tau in enumerate((resp.LAG_TAU_S, resp.FLIP_TAU_S)):
            a = max(min(len(d), used) / used, 1.0 - math.exp(-len(d) / (tau * self.fs_hz)))
            self._moments[row] += a * (new - self._moments[row])

    def restart_shape(self) -> None:
        """Remember the shape from the recent wave only (the strap was turned over)."""
        self._moments[0] = self._moments[1]

    def shape_skew(self) -> tuple[float, float]:
        """Skewness of the wave's slope, long- and short-term: > 0 when the wave rises
        faster than it falls (inhale up, if the inhale is the shorter part)."""
        m2, m3 = self._moments[:, 0], self._moments[:, 1]
        sk = m3 / np.where(m2 > 0, m2, 1.0) ** 1.5
        return float(sk[0]), float(sk[1])

    def _decimate(self, chunk: AccChunk) -> tuple[np.ndarray, np.ndarray]:
        """Block averages of a chunk (with what the last one left over) and their times."""
        if self._block is None:
            self._block = max(1, round(chunk.fs_hz / self.fs_hz))
        if self._next_t is None or not len(self._leftover):
            self._next_t = chunk.t_s - len(self._leftover) / chunk.fs_hz
        x = np.concatenate([self._leftover, chunk.acc_mg])
        n = len(x) // self._block
        self._leftover = x[n * self._block :]
        if n == 0:
            return np.empty(0), np.empty((0, 3))
        xd = np.add.reduce(x[: n * self._block].reshape(n, self._block, 3), axis=1) / self._block
        dt = self._block / chunk.fs_hz
        t = self._next_t + (np.arange(n) + 0.5) * dt - 0.5 / chunk.fs_hz
        self._next_t += n * dt
        return t, xd

    def _despike(self, xd: np.ndarray) -> np.ndarray:
        """Hold the wave through sudden changes and remove the step they leave.

        A posture shift turns gravity by hundreds of mG within a second and a cough
        jolts the chest; breathing never moves it that fast. Where the change over
        :data:`JUMP_LAG_S` exceeds the larger of :data:`JUMP_MIN_MG` and
        :data:`JUMP_FACTOR` x its running rms, the last clean value is held until
        :data:`JUMP_HOLD_S` after the last such change; then the new level is offset
        to continue from the held one, so no step reaches the breathing filter.
        """
        hist = np.concatenate([self._recent, xd])
        k0 = len(self._recent)
        change = np.full(len(xd), -1.0)
        if len(hist) > self._lag:
            step = hist[self._lag :] - hist[: -self._lag]
            d = np.sqrt(np.add.reduce(step * step, axis=1))  # np.linalg.norm(step, axis=1)
            change[max(0, self._lag - k0) :] = d[max(0, k0 - self._lag) :]
        self._recent = hist[-self._lag :]
        out = xd - self._offset
        a = 1.0 / (JUMP_TAU_S * self.fs_hz)
        hold = round(JUMP_HOLD_S * self.fs_hz)
        for i, c in enumerate(change.tolist()):
            thr = max(JUMP_MIN_MG, JUMP_FACTOR * math.sqrt(self._jump_ms))
            if c > thr:
                if self._held is None:
                    self.jumps += 1
                    prev = out[i - 1] if i else self._last
                    self._held = (prev if prev is not None else out[i]).copy()
                self._hold_left = hold
            if self._held is not None:
                if self._hold_left > 0:
                    self._hold_left -= 1
                    out[i] = self._held
                    continue
                self._offset = xd[i] - self._held
                out[i:] = xd[i:] - self._offset
                self._held = None
            elif c >= 0:
                self._jump_ms += a * (c * c - self._jump_ms)
        self._last = out[-1].copy()
        return out


class BreathEstimator:
    """Fused live breathing of one partner: ACC, then ECG-derived, then RR [2]_.

    Feed :meth:`push_acc`, :meth:`push_ecg` and :meth:`push_beats` as data arrives;
    :meth:`estimate` re-analyses at most once per :data:`~coach.respiration.UPDATE_S`
    and otherwise extrapolates the phase, so calling it often is cheap. Chest motion
    chunks wait until the next analysis (or :data:`MAX_PENDING` chunks) and are then
    processed as one block: nothing reads them in between, and one pass over a second
    of data costs far less than one per chunk. ECG goes through the R-peak detector only
    when the analysis may use it (chest motion silent or poor); meanwhile the last
    :data:`ECG_BACKLOG_S` are kept, so a switch to ECG finds a full window.
    """

    def __init__(self) -> None:
        self.acc = AccWave()
        self._detector: RPeakDetector | None = None
        self._ecg_rr = RRCleaner()
        self._strap_rr = RRCleaner()
        self._last_r: float | None = None
        # source 0 of each window is heart rate (sign known); gain 0 = sign only
        self.windows = {
            "acc": resp.BreathWindow(
                2,
                gains=(0.0, 1.0),
                band_hz=BREATH_BAND_HZ,
                min_data_s=MIN_DATA_S,  # chest motion may start later than the beats
                phase_cycles=resp.PHASE_CYCLES,
            ),
            "ecg": resp.BreathWindow(3),
            "rr": resp.BreathWindow(1),
        }
        self.windows["acc"].harmonics, self.windows["acc"].wide_hz = ACC_HARMONICS, ACC_WIDE_HZ
        self.windows["ecg"].shift_rsa = True  # QRS shape and area show the breath at once
        self.windows["ecg"].echt = ECG_ECHT
        for name, w in self.windows.items():
            w.label = name
        self.source: str | None = None
        self.confidence: float | None = None  # long-term quality of the source in use
        self.trusted = False  # confidence held the gate for TRUST_HOLD_S: the pacer may follow
        self.disagree = False  # chest motion and heart rate disagree on the rate
        self._disagree_since: float | None = None
        self._agree_since: float | None = None
        self._trusted_since: float | None = None
        self._trusted_source: str | None = None
        self._due_s = -math.inf
        self._first_s: float | None = None  # time of the first data of any source
        self._cached: BreathEstimate | None = None  # estimate at the last analysis
        self._cached_t = -math.inf
        self._shown: tuple[float, float] | None = None  # (t, phase) of the drawn wave
        self._phase_bpm: float | None = None  # rate the cached phase advances at
        self._acc_pending: list[AccChunk] = []
        self._ecg_pending: deque[EcgChunk] = deque()
        self._ecg_end_s = -math.inf  # end of the last ECG through the detector

    def push_acc(self, chunk: AccChunk) -> None:
        """Chest accelerometer samples (mG)."""
        self._first_s = chunk.t_s if self._first_s is None else self._first_s
        self._acc_pending.append(chunk)
        if len(self._acc_pending) >= MAX_PENDING:
            self._take_pending()

    def push_ecg(self, chunk: EcgChunk) -> None:
        """ECG samples (uV): R peaks, then RSA, QRS-morphology score and QRS area."""
        self._first_s = chunk.t_s if self._first_s is None else self._first_s
        pending = self._ecg_pending
        pending.append(chunk)
        while pending[0].end_s < chunk.end_s - ECG_BACKLOG_S:
            pending.popleft()

    def _take_pending(self) -> None:
        """Process the chest motion received since the last call."""
        if self._acc_pending:
            t, y = self.acc.push_chunks(self._acc_pending)
            self._acc_pending = []
            if t.size:
                w = self.windows["acc"]
                w.push(1, t, y)
                if w.shape_flipped:  # its memory of the shape was of the strap as it was
                    self.acc.restart_shape()
                    w.shape_flipped = False
                w.shape_skew = self.acc.shape_skew()

    def _take_ecg(self) -> None:
        """Put the ECG waiting through the R-peak detector, into the ECG window."""
        if not self._ecg_pending:
            return
        chunks = list(self._ecg_pending)
        self._ecg_pending.clear()
        if self._detector is None or chunks[0].t_s - self._ecg_end_s > ECG_RESTART_S:
            # the first ECG, or ECG left waiting (or silent) for a while: start afresh
            self._detector = RPeakDetector(chunks[0].fs_hz)
            self._ecg_rr, self._last_r = RRCleaner(), None
        self._ecg_end_s = chunks[-1].end_s
        # a backlog (up to 70 s when ECG takes over) goes through a second at a time, as
        # it would have live: search-back is checked once per call, and one call over the
        # whole backlog lost every beat after a large artifact (see ecg.ecg_peaks)
        step: list[EcgChunk] = []
        for c in chunks:
            if step and c.t_s - step[0].t_s >= STEP_S:
                self._ecg_beats(self._detector.process_chunks([(s.ecg_uv, s.t_s) for s in step]))
                step = []
            step.append(c)
        self._ecg_beats(self._detector.process_chunks([(s.ecg_uv, s.t_s) for s in step]))

    def _ecg_beats(self, b: Beats) -> None:
        """R peaks to the ECG window: QRS-morphology score, QRS area and RSA.

        The morphology score (the first principal component of the beat-to-beat change
        of the QRS, :class:`coach.ecg.QrsMorphology`) replaced the R-S amplitude: on the
        MARSH recordings it follows the impedance wave where the R-S amplitude leads it
        or misses it (docs/breathing.md, "ECG breathing waves")."""
        if not b.t_s.size:
            return
        w = self.windows["ecg"]
        w.push(1, b.t_s, b.morph_uv)
        w.push(2, b.t_s, b.area_uvs)
        prev = np.concatenate([[self._last_r if self._last_r is not None else np.nan], b.t_s])
        self._last_r = float(b.t_s[-1])
        beats = zip(b.t_s.tolist(), (1000.0 * np.diff(prev)).tolist(), strict=True)
        self._push_rsa(self._ecg_rr, [w], [(t, r) for t, r in beats if math.isfinite(r)])

    def push_beats(
        self, beat_t_s: tuple[float, ...], rr_ms: tuple[float, ...]
    ) -> list[tuple[float, float]]:
        """Beats reported by the strap: time of each beat and the interval it ends.

        Returns the beats the artifact correction has released (two beats late), so the
        heart figures use the same corrected series.
        """
        targets = [self.windows["rr"], self.windows["acc"]]
        if self._first_s is None and beat_t_s:
            self._first_s = beat_t_s[0] - rr_ms[0] / 1000.0
        return self._push_rsa(self._strap_rr, targets, zip(beat_t_s, rr_ms, strict=True))

    @staticmethod
    def _push_rsa(
        cleaner: RRCleaner, targets: list[resp.BreathWindow], beats: Iterable[tuple[float, float]]
    ) -> list[tuple[float, float]]:
        """Beats (time, interval) through the artifact correction, then as heart rate
        (RSA) to the windows; returns the corrected beats."""
        clean: list[tuple[float, float]] = []
        for t, r in beats:
            clean += cleaner.push(t, r)
        if clean:
            tc, rc = np.array(clean).T
            tp, hr = rsa_points(tc, rc)
            for w in targets:
                w.push(0, tp, hr)
        return clean

    def _fresh(self, name: str, t_s: float) -> bool:
        k = 1 if name in ("acc", "ecg") else 0
        return t_s - self.windows[name].last_t(k) <= SOURCE_SILENT_S + resp.UPDATE_S

    def update(self, t_s: float) -> None:
        """Re-analyse the best fresh source: chest motion while its confidence holds the
        gate, else ECG, else RR (else the first that has a rate, not to be trusted)."""
        self._take_pending()
        self._due_s = t_s + resp.UPDATE_S
        self._cached = None
        chosen = None
        conf: dict[str, float] = {}
        for name in ("acc", "ecg", "rr"):
            if name == "ecg":
                self._take_ecg()  # only now may the analysis use it
                # the person's lag as chest motion has learned it gives the ECG its sign
                self.windows["ecg"].taught_lag_s = self.windows["acc"].rsa_lag_s()
            if not self._fresh(name, t_s):
                continue
            w = self.windows[name]
            st = w.update(t_s)
            if name == "acc" and st is None:
                break  # chest motion flows but fills its window: wait, don't switch sources
            if st is not None and w.rate_bpm(t_s) is not None:
                conf[name] = w.confidence()
                chosen = chosen or name
                if conf[name] >= QUALITY_GATE[name]:
                    chosen = name
                    break
        if "acc" in conf:  # chest motion has a rate: check it against heart rate
            chosen = self._cross_check(t_s, conf) or chosen
        else:
            self._disagree_since, self._agree_since, self.disagree = None, None, False
        # the windows learn their sources' quality and sign from the start, but a
        # window of a few breaths gives rates far off: report once there is more
        early = self._first_s is None or t_s - self._first_s < MIN_DATA_S
        self.source = None if early else chosen
        self.confidence = None if self.source is None else conf[self.source] * (
            DISAGREE_FACTOR if self.disagree else 1.0)
        if self.confidence is None or self.confidence < QUALITY_GATE[self.source or ""]:
            self._trusted_since = None
        elif self._trusted_since is None or self.source != self._trusted_source:
            self._trusted_since, self._trusted_source = t_s, self.source
        self.trusted = self._trusted_since is not None and t_s - self._trusted_since >= TRUST_HOLD_S

    def _cross_check(self, t_s: float, conf: dict[str, float]) -> str | None:
        """Chest motion against the strap's heart rate (RR), whichever is in use: more
        than :data:`DISAGREE_BPM` apart for :data:`DISAGREE_HOLD_S` lowers the confidence
        and the estimate follows the source of the better long-term quality (returned;
        None while they agree). The flag clears once they have agreed for
        :data:`AGREE_HOLD_S` (one stray window is no agreement)."""
        w = self.windows["rr"]
        # analysed already in this update, or now
        # (for its rate only: the fresher phase wave is not needed unless RR serves, and
        # then, this second, its phase comes from the common part of its window)
        rr_ok = "rr" in conf or (self._fresh("rr", t_s)
                                 and w.update(t_s, fresh_phase=False) is not None)
        rr = w.rate_bpm(t_s) if rr_ok else None
        acc = self.windows["acc"].rate_bpm(t_s)
        if rr is None or acc is None or abs(acc - rr) <= DISAGREE_BPM:
            self._disagree_since = None
            if self._agree_since is None:
                self._agree_since = t_s
        else:
            self._agree_since = None
            if self._disagree_since is None:
                self._disagree_since = t_s
        was = self.disagree
        if self._disagree_since is not None and t_s - self._disagree_since >= DISAGREE_HOLD_S:
            self.disagree = True
        elif self._agree_since is not None and t_s - self._agree_since >= AGREE_HOLD_S:
            self.disagree = False
        if self.disagree != was:
            log.info("chest motion and heart rate %s (%s vs %s /min)",
                     "disagree" if self.disagree else "agree again", acc, rr)
        if not self.disagree:
            return None
        conf["rr"] = w.confidence()
        return "rr" if conf["rr"] > conf["acc"] else "acc"

    def estimate(self, t_s: float) -> BreathEstimate:
        """Rate, phase, level, depth, regularity, source and quality at ``t_s``.

        Between analyses (no new breath can have been found) the last estimate is
        reused with its phase advanced at its rate: cheap enough for every frame.
        ``level``, the wave a dashboard draws, follows the phase through a
        slew-limited copy of it, so a corrected onset bends the drawn wave instead of
        breaking it; ``phase`` itself is never smoothed.
        """
        e, phase = self._estimate(t_s)
        if phase is None:
            self._shown = None
            return e
        level = -math.cos(self._shown_phase(t_s, phase))
        # built directly (dataclasses.replace: 20 us, ten times a second per partner); by
        # keyword, so a field added to BreathEstimate cannot land in the wrong place
        return BreathEstimate(rate_bpm=e.rate_bpm, phase=phase, level=level, depth=e.depth,
                              regularity=e.regularity, source=e.source, quality=e.quality,
                              confidence=e.confidence, trusted=e.trusted,
                              disagree=e.disagree, phase_confidence=e.phase_confidence)

    def _shown_phase(self, t_s: float, phase: float) -> float:
        if self._shown is None or t_s < self._shown[0] or self._phase_bpm is None:
            self._shown = (t_s, phase)
            return phase
        t0, shown = self._shown
        dt = t_s - t0
        ahead = shown + TWO_PI * self._phase_bpm / 60.0 * dt
        error = (phase - ahead + math.pi) % TWO_PI - math.pi
        step = SHOWN_SLEW_RAD_S * dt
        shown = (ahead + max(-step, min(step, error))) % TWO_PI
        self._shown = (t_s, shown)
        return shown

    def _estimate(self, t_s: float) -> tuple[BreathEstimate, float | None]:
        """The last analysis and its phase advanced to ``t_s``."""
        if t_s >= self._due_s:
            self.update(t_s)
        c = self._cached
        if c is not None and t_s >= self._cached_t:
            if c.phase is None or self._phase_bpm is None:
                return c, c.phase
            return c, (c.phase + TWO_PI * self._phase_bpm / 60.0 * (t_s - self._cached_t)) % TWO_PI
        self._cached, self._cached_t = self._analyse(t_s), t_s
        w = self.windows.get(self.source or "")
        self._phase_bpm = w.rate_bpm(t_s, w.phase_cycles) if w is not None else None
        return self._cached, self._cached.phase

    def _phase_delay_s(self, source: str) -> float:
        """How late the source's wave shows the breath. Heart rate alone (RR) lags it
        by the person's own lag if chest motion or ECG has taught it, else by
        :data:`~coach.respiration.POPULATION_LAG_S`."""
        if source != "rr":
            return PHASE_DELAY_S[source]
        for name in ("acc", "ecg"):
            lag = self.windows[name].rsa_lag_s()
            if lag is not None:
                return lag
        return resp.POPULATION_LAG_S

    def _analyse(self, t_s: float) -> BreathEstimate:
        if self.source is None:
            return BreathEstimate(None, None, None, None, None)
        w = self.windows[self.source]
        st = w.state
        assert st is not None
        rate = w.rate_bpm(t_s)
        if rate is None:
            return BreathEstimate(None, None, st.level, None, None, self.source, st.quality,
                                  self.confidence, False, self.disagree)
        depth = resp.median_of_sorted(np.sort(st.depth[-6:])) if st.depth.size else None
        phase = w.phase(t_s, self._phase_delay_s(self.source))
        level: float | None = -math.cos(phase) if phase is not None else st.level
        agreement = w.agreement() if self.source == "ecg" else None
        if self.source == "ecg" and (agreement is None or agreement < PHASE_GATE):
            phase = level = None  # heart rate alone, late by a lag the ECG does not show
        return BreathEstimate(
            rate,
            phase,
            level,
            depth,
            w.regularity(),
            self.source,
            st.quality,
            self.confidence,
            self.trusted,
            self.disagree,
            agreement,
        )
