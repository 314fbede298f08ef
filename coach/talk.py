"""Is a person talking? From the chest's vibration, or from breathing that lost its rhythm.

Speech breathing is a different thing from quiet breathing (short inhales, long uneven
exhales; heart rate and RSA change with it), so synchrony and calm leave talk out and
the report shows it apart.

- **Chest accelerometer** (Polar H10): the voice shakes the chest. Acceleration is
  high-passed above :data:`TALK_HP_HZ` (breathing, posture and most of the heartbeat's
  jolt lie below), its RMS taken per second, and a second counts as talk when that RMS
  exceeds :data:`TALK_RATIO` times the person's quiet level (the
  :data:`QUIET_PERCENTILE`th percentile of their last :data:`HISTORY_S` seconds). The
  flag stays :data:`HANGOVER_S` after the last loud second (pauses between phrases).
- **ECG or R-R only**: no vibration to see; breathing irregular beyond
  :data:`IRREGULAR_BELOW` (the breath estimator's regularity) counts as talk. Coarser:
  it follows breaths, not seconds.

Validated on the simulator only (sims.person talking bouts): no recording of real talk
with a reference was available (docs/coregulation.md).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from typing import Final

import numpy as np
from scipy import signal

from coach.respiration import SosStream
from coach.types import AccChunk

TALK_HP_HZ: Final = 15.0  # Hz
TALK_RATIO: Final = 2.5  # times the quiet level
QUIET_PERCENTILE: Final = 25.0
HISTORY_S: Final = 300  # seconds of per-second levels kept
MIN_HISTORY_S: Final = 20  # seconds before the quiet level is trusted
HANGOVER_S: Final = 2.0  # seconds
ACC_STALE_S: Final = 3.0  # without ACC this long, fall back to breathing regularity
IRREGULAR_BELOW: Final = 0.5  # breathing regularity that counts as talk without ACC
MAX_PENDING: Final = 32  # chunks held before they are processed anyway


class TalkDetector:
    """The talking flag of one person, fed with their chest-acceleration chunks."""

    def __init__(self) -> None:
        self._hp: SosStream | None = None
        self._fs: float | None = None
        self._block: tuple[float, float, int] | None = None  # (start, sum of squares, n)
        self._levels: deque[float] = deque(maxlen=HISTORY_S)
        self._sorted: list[float] = []  # the same levels in order of size (NaN apart)
        self._nans = 0  # NaN levels among them
        self._loud_until: float | None = None
        self._last_acc_s: float | None = None
        self._pending: list[AccChunk] = []  # chunks not yet processed

    def push_acc(self, chunk: AccChunk) -> None:
        """Take one chunk of chest acceleration (mG). Chunks wait until the flag is read
        (or :data:`MAX_PENDING` of them) and are then processed as one block, with the
        same arithmetic as one by one: a second of them costs about what one did."""
        if len(chunk.acc_mg):
            self._pending.append(chunk)
            if len(self._pending) >= MAX_PENDING:
                self._take_pending()

    def _take_pending(self) -> None:
        chunks, self._pending = self._pending, []
        for fs, same_rate in itertools.groupby(chunks, key=lambda c: c.fs_hz):
            self._push_block(list(same_rate), fs)

    def _push_block(self, chunks: list[AccChunk], fs: float) -> None:
        """Chunks of one sampling rate, in order: high-pass, then the power of each
        second, summed chunk by chunk as they came."""
        if self._hp is None or self._fs != fs:
            self._fs = fs  # (started at rest on the first sample: no gravity step)
            self._hp = SosStream(signal.butter(4, TALK_HP_HZ, btype="highpass",
                                               fs=fs, output="sos"))
        sizes = np.array([len(c.acc_mg) for c in chunks])
        ends = np.cumsum(sizes)
        x = np.concatenate([c.acc_mg for c in chunks]) if len(chunks) > 1 else chunks[0].acc_mg
        y = self._hp.process(x)
        power = np.sum(y * y, axis=1)
        # each sample's time from its own chunk's start, as chunk.t_s + arange / fs
        k = np.arange(ends[-1]) - np.repeat(ends - sizes, sizes)
        t = np.repeat([c.t_s for c in chunks], sizes) + k / fs
        self._last_acc_s = float(t[-1])
        start, total, n = self._block or (math.floor(t[0]), 0.0, 0)
        seconds = np.floor(t)
        # runs of samples within one second and one chunk
        changes = (np.flatnonzero(seconds[1:] != seconds[:-1]) + 1).tolist()
        cuts = sorted({0, *changes, *ends.tolist()})
        for a, b in itertools.pairwise(cuts):
            second = seconds[a]
            if second != start:  # a second is complete
                self._close(start, total, n)
                start, total, n = second, 0.0, 0
            total += float(power[a:b].sum())
            n += b - a
        self._block = (start, total, n)

    def _close(self, start: float, total: float, n: int) -> None:
        if n < 10:
            return
        rms = math.sqrt(total / n)
        if len(self._levels) >= MIN_HISTORY_S:
            quiet = math.nan if self._nans else _percentile(self._sorted, QUIET_PERCENTILE)
            if rms > TALK_RATIO * quiet:
                self._loud_until = start + 1.0 + HANGOVER_S
        if len(self._levels) == self._levels.maxlen:
            self._forget(self._levels[0])
        self._levels.append(rms)
        if math.isnan(rms):
            self._nans += 1
        else:
            bisect.insort(self._sorted, rms)

    def _forget(self, level: float) -> None:
        if math.isnan(level):
            self._nans -= 1
        else:
            del self._sorted[bisect.bisect_left(self._sorted, level)]

    def talking(self, t_s: float, regularity: float | None) -> bool | None:
        """Talk now? None when neither the chest nor the breathing can tell."""
        self._take_pending()
        if self._last_acc_s is not None and t_s - self._last_acc_s <= ACC_STALE_S:
            if len(self._levels) < MIN_HISTORY_S:
                return None
            return self._loud_until is not None and t_s < self._loud_until
        if regularity is None:
            return None
        return regularity < IRREGULAR_BELOW


def _percentile(s: list[float], q: float) -> float:
    """``np.percentile(s, q)`` (linear, the same value) of a sorted list without NaN: one
    level a second against the last five minutes', without sorting them every time."""
    n = len(s)
    virtual = (n - 1) * (q / 100.0)
    k = math.floor(virtual)
    gamma = virtual - k
    a, b = (s[-1], s[-1]) if virtual >= n - 1 else (s[k], s[k + 1])
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
