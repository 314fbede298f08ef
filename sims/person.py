"""A simulated person: breathing, heart and arousal, as a chest strap would sense them.

The model, per step of ``STEP_S``:

- **Arousal** ``a`` in [0, 1] rises fast (``AROUSAL_RISE_TAU_S``) and relaxes slowly
  (``AROUSAL_TAU_S``) toward the
  scenario's setpoint, lowered while the person breathes slower than their own natural
  pace (following a slow orb calms), plus a little noise.
- **Breathing**: a phase oscillator. The natural rate is ``6 + 12 a`` breaths/min (a
  calm adult near 8, an activated one near 16). The rate the person aims at mixes the
  natural rate with the orb's (weight ``compliance``) and with the calmer partner's
  (weight ``coupling``); the actual rate relaxes toward it (``RATE_TAU_S``). A phase pull
  ``compliance * ORB_PULL`` toward the orb's phase locks a compliant person onto it;
  ``phase_coupling * ORB_PULL`` pulls toward the partner's phase (people who attune).
  Each breath gets its own rate and depth jitter (coefficient of variation
  ``breath_cv``); about one breath in ``SIGH_EVERY`` is a sigh (2.3x depth). Inhale takes
  ``inhale_fraction`` of a cycle.
- **Heart**: rate ``hr_rest + 35 a`` plus respiratory sinus arrhythmia (HR rises on the
  inhale, following lung volume with a lag of ``rsa_lag_s``; larger when calm and near
  6/min) plus slow variability (an Ornstein-Uhlenbeck process). Beats fall where the
  integral of HR crosses whole numbers, on a 1/1024 s grid as straps report them.
- **Chest accelerometer** (Polar H10 frame, mG, 200 Hz): gravity for the person's
  posture (slowly drifting), chest tilt proportional to lung volume along the person's
  own breathing axis, a small ballistocardiogram jolt at each beat, and sensor noise.
- **ECG** (130 Hz, uV): Q-R-S-T waves at each beat, R amplitude rising or falling with
  breathing (``edr_sign``: it depends on the electrodes), baseline wander and noise.

Each person draws their own physiology (:class:`Physiology`: RSA lag 0-3 s, inhale
fraction 0.3-0.5, breath-to-breath variability, EDR polarity, chest-motion axis) from
their own generator, unless the spec fixes it; none of it comes from the estimator's
constants, so the estimator cannot agree with the simulator by construction.
Deterministic from the ``numpy.random.Generator`` it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coach.types import TWO_PI, AccChunk, EcgChunk, PacerState

STEP_S = 0.25  # seconds per physiology step
ACC_FS_HZ = 200.0
ECG_FS_HZ = 130.0
RR_TICK_S = 1.0 / 1024.0  # straps report RR in 1/1024 s
AROUSAL_TAU_S = 40.0  # calming down is slow
AROUSAL_RISE_TAU_S = 1.5  # getting activated is fast (sympathetic response)
RATE_TAU_S = 25.0
ORB_PULL = 0.6  # rad/s of phase correction per unit compliance
SIGH_EVERY = 45.0  # breaths
RSA_LAG_RANGE_S = (0.0, 3.0)  # s, heart rate behind lung volume (drawn per person)
INHALE_FRACTION_RANGE = (0.3, 0.5)  # of a breath (drawn per person)
BREATH_CV_RANGE = (0.06, 0.2)  # breath-to-breath variability of rate (resting adults: 0.1-0.25)
BREATH_TILT_MG = 18.0  # chest tilt per unit depth, mG
G_MG = 1000.0
TALK_BREATH_CV = 0.45  # breath-to-breath variability while talking
TALK_VIBRATION_MG = 10.0  # chest vibration of the voice, mG RMS


@dataclass(frozen=True, slots=True)
class PersonSpec:
    """Who a simulated person is at the start of a scenario."""

    label: str
    arousal: float = 0.3  # 0 calm .. 1 activated
    compliance: float = 0.5  # 0 ignores the orb, 1 locks on
    coupling: float = 0.0  # pull toward the calmer partner's rate
    phase_coupling: float = 0.0  # pull toward the partner's breath phase
    depth: float = 1.0
    hr_rest_bpm: float = 60.0
    rsa_bpm: float = 8.0  # peak-to-peak RSA when calm
    lean_deg: float = 12.0  # forward lean of the torso
    # physiology the person draws from their own generator unless fixed here
    rsa_lag_s: float | None = None  # heart rate behind lung volume
    inhale_fraction: float | None = None  # of each breath
    breath_cv: float | None = None  # breath-to-breath variability of the rate
    edr_sign: float | None = None  # +1: R waves grow on the inhale, -1: they shrink
    natural_bpm: float | None = None  # fixed natural rate instead of 6 + 12 x arousal
    talk_share: float = 0.0  # share of the time spent talking, in bouts
    talk_bout_s: float = 20.0  # mean length of a bout of talk, seconds


@dataclass(frozen=True, slots=True)
class Physiology:
    """What makes one person's signals their own (drawn, or fixed by the spec)."""

    rsa_lag_s: float
    inhale_fraction: float
    breath_cv: float
    edr_sign: float
    breath_axis: np.ndarray  # unit vector in the strap's frame: chest tilt per inhale

    @classmethod
    def draw(cls, spec: PersonSpec, rng: np.random.Generator) -> Physiology:
        """Every value is drawn (so the stream does not depend on what the spec fixes),
        then the spec's fixed values replace the drawn ones."""
        lag = float(rng.uniform(*RSA_LAG_RANGE_S))
        frac = float(rng.uniform(*INHALE_FRACTION_RANGE))
        cv = float(rng.uniform(*BREATH_CV_RANGE))
        sign = 1.0 if rng.uniform() < 0.5 else -1.0
        # mostly front-back tilt (the chest wall rises), but each person's own mix
        axis = np.array([0.25, 0.15, 1.0]) + rng.normal(0, 0.35, 3)
        axis *= (1.0 if rng.uniform() < 0.5 else -1.0) / np.linalg.norm(axis)
        return cls(
            lag if spec.rsa_lag_s is None else spec.rsa_lag_s,
            frac if spec.inhale_fraction is None else spec.inhale_fraction,
            cv if spec.breath_cv is None else spec.breath_cv,
            sign if spec.edr_sign is None else spec.edr_sign,
            axis,
        )


def aged_spec(label: str, age_years: float, fitness: float, **kw: float) -> PersonSpec:
    """A person of this age and fitness (0 unfit .. 1 athlete): resting heart rate and the
    size of their respiratory sinus arrhythmia drawn from the simulator's own rules of
    thumb (resting rate lower when fit, a little higher with age; RSA about halving from
    the 20s to the 60s and larger when fit), not from anything the coach estimates."""
    hr_rest = 74.0 - 14.0 * fitness + 0.08 * (age_years - 40.0)
    rsa = 12.0 * 0.5 ** ((age_years - 25.0) / 40.0) * (0.7 + 0.6 * fitness)
    return PersonSpec(label, hr_rest_bpm=hr_rest, rsa_bpm=rsa, **kw)  # type: ignore[arg-type]


def natural_rate_bpm(arousal: float) -> float:
    """The breathing rate a person drifts to on their own at this arousal."""
    return 6.0 + 12.0 * arousal


@dataclass(frozen=True, slots=True)
class Signals:
    """What a strap senses over one step."""

    acc: AccChunk
    ecg: EcgChunk
    beat_t_s: np.ndarray  # host times of beats in this step
    rr_ms: np.ndarray  # interval ending at each beat


class Person:
    """One simulated person; call :meth:`advance` with increasing end times."""

    def __init__(self, spec: PersonSpec, rng: np.random.Generator, t0_s: float = 0.0) -> None:
        self.spec = spec
        self.rng = rng
        self.t_s = t0_s
        self.arousal = spec.arousal
        self.arousal_set = spec.arousal
        self.compliance = spec.compliance
        # the person's own physiology, from a generator of its own (the main stream
        # stays as it was, so scenarios keep their other draws)
        self.physiology = Physiology.draw(spec, rng.spawn(1)[0])
        self.rate_bpm = self._natural_bpm(spec.arousal)
        self.phase = float(rng.uniform(0, TWO_PI))
        self._breath_jitter = 1.0
        self._depth = spec.depth
        self._hr_noise = 0.0
        self._beat_acc = float(rng.uniform(0, 1))  # fraction of the current beat done
        self._last_beat_s: float | None = None
        self._recent_beats: list[float] = []
        self._lean = math.radians(spec.lean_deg)
        self._roll = float(rng.normal(0, 0.05))
        self._breath_axis = self.physiology.breath_axis
        self._acc_n = 0  # samples emitted, so chunks tile exactly
        self._ecg_n = 0
        self._t_origin = t0_s
        self._volume_hist: list[tuple[float, float]] = []
        self.talking = False
        self.talk_bouts: list[tuple[float, float]] = []  # (start, end) of each bout so far
        # talk draws from its own stream, so people who never talk are unchanged
        self._talk_rng = rng.spawn(1)[0] if spec.talk_share > 0 else None

    # --------------------------------------------------------------- dynamics
    def _natural_bpm(self, arousal: float) -> float:
        fixed = self.spec.natural_bpm
        return natural_rate_bpm(arousal) if fixed is None else fixed

    def _aim_rate(self, orb: PacerState | None, partner_rate: float | None) -> float:
        natural = self._natural_bpm(self.arousal)
        aim = natural
        if orb is not None:
            aim += self.compliance * (orb.rate_bpm - aim)
        if partner_rate is not None and self.spec.coupling > 0:
            aim += self.spec.coupling * (partner_rate - aim)
        return aim

    def _step_arousal(self, dt: float) -> None:
        natural = self._natural_bpm(self.arousal_set)
        slower = max(0.0, natural - self.rate_bpm) / 10.0
        target = self.arousal_set - 0.25 * self.compliance * min(slower, 1.0)
        tau = AROUSAL_RISE_TAU_S if target > self.arousal else AROUSAL_TAU_S
        self.arousal += (target - self.arousal) * min(dt / tau, 1.0)
        self.arousal += self.rng.normal(0, 0.006) * math.sqrt(dt)
        self.arousal = min(max(self.arousal, 0.0), 1.0)

    def _phase_rate(self, t: float, orb: PacerState | None, partner_phase: float | None) -> float:
        omega = TWO_PI * self.rate_bpm * self._breath_jitter / 60.0
        if orb is not None and self.compliance > 0:
            omega += self.compliance * ORB_PULL * math.sin(orb.phase_at(t) - self.phase)
        if partner_phase is not None and self.spec.phase_coupling > 0:
            omega += self.spec.phase_coupling * ORB_PULL * math.sin(partner_phase - self.phase)
        return max(omega, 0.2)

    def _step_talk(self, t0: float, dt: float) -> None:
        """Bouts of talk start at random and last about ``talk_bout_s`` seconds."""
        if self._talk_rng is None:
            return
        share, bout = self.spec.talk_share, self.spec.talk_bout_s
        if self.talking:
            if t0 >= self.talk_bouts[-1][1]:
                self.talking = False
            return
        if self._talk_rng.uniform() < dt * share / (max(1.0 - share, 0.05) * bout):
            length = float(np.clip(self._talk_rng.exponential(bout), 5.0, 4 * bout))
            self.talk_bouts.append((t0, t0 + length))
            self.talking = True

    def _new_breath(self) -> None:
        if self.talking and self._talk_rng is not None:  # speech: short inhales, long
            self._breath_jitter = float(np.clip(  # and uneven exhales
                self._talk_rng.normal(0.9, TALK_BREATH_CV), 0.35, 1.8))
            self._depth = self.spec.depth * float(self._talk_rng.uniform(0.4, 1.3))
            return
        cv = self.physiology.breath_cv
        self._breath_jitter = float(np.clip(self.rng.normal(1.0, cv), 0.7, 1.3))
        depth = self.spec.depth * float(np.clip(self.rng.normal(1.0, 0.1), 0.6, 1.4))
        if self.rng.uniform() < 1.0 / SIGH_EVERY:
            depth *= 2.3
        self._depth = depth

    def volume(self, phase: np.ndarray | float) -> np.ndarray:
        """Lung volume above rest, 0..depth, for breath phases."""
        frac = self.physiology.inhale_fraction
        x = np.mod(np.asarray(phase, dtype=float), TWO_PI) / TWO_PI
        rising = 0.5 - 0.5 * np.cos(np.pi * x / frac)
        falling = 0.5 + 0.5 * np.cos(np.pi * (x - frac) / (1.0 - frac))
        return np.where(x < frac, rising, falling) * self._depth

    # --------------------------------------------------------------- stepping
    def advance(
        self,
        t_end_s: float,
        orb: PacerState | None = None,
        partner_rate_bpm: float | None = None,
        partner_phase: float | None = None,
    ) -> Signals:
        """Move the person to ``t_end_s`` and return what the strap sensed meanwhile."""
        t0 = self.t_s
        dt = t_end_s - t0
        if dt <= 0:
            raise ValueError("advance() needs a later time")
        self._step_arousal(dt)
        self._step_talk(t0, dt)
        aim = self._aim_rate(orb, partner_rate_bpm)
        self.rate_bpm += (aim - self.rate_bpm) * min(dt / RATE_TAU_S, 1.0)
        omega = self._phase_rate(t0, orb, partner_phase)
        n_acc = round((t_end_s - self._t_origin) * ACC_FS_HZ) - self._acc_n
        n_ecg = round((t_end_s - self._t_origin) * ECG_FS_HZ) - self._ecg_n
        t_acc = self._t_origin + (self._acc_n + np.arange(n_acc)) / ACC_FS_HZ
        t_ecg = self._t_origin + (self._ecg_n + np.arange(n_ecg)) / ECG_FS_HZ
        phase_acc = self.phase + omega * (t_acc - t0)
        beats, rr = self._beats(t0, t_end_s, omega)
        acc = self._acc(t_acc, phase_acc, beats)
        ecg = self._ecg(t_ecg, t0, omega)
        end_phase = self.phase + omega * dt
        if end_phase >= TWO_PI:
            self._new_breath()
        self.phase = end_phase % TWO_PI
        self._acc_n += n_acc
        self._ecg_n += n_ecg
        self.t_s = t_end_s
        return Signals(
            acc=AccChunk(float(t_acc[0]) if n_acc else t0, self.spec.label, ACC_FS_HZ, acc),
            ecg=EcgChunk(float(t_ecg[0]) if n_ecg else t0, self.spec.label, ECG_FS_HZ, ecg),
            beat_t_s=beats,
            rr_ms=rr,
        )

    # --------------------------------------------------------------- heart
    def hr_bpm(self, volume_lagged: np.ndarray) -> np.ndarray:
        """Instantaneous heart rate for lung volumes seen ``rsa_lag_s`` earlier."""
        a = self.arousal
        near_resonance = 1.0 + 0.6 * math.exp(-(((self.rate_bpm - 6.0) / 3.0) ** 2))
        rsa = self.spec.rsa_bpm * (1.0 - 0.7 * a) * near_resonance
        base = self.spec.hr_rest_bpm + 35.0 * a + self._hr_noise
        fill = np.minimum(volume_lagged / max(self.spec.depth, 1e-6), 1.4)  # a sigh saturates
        return base + rsa * (fill - 0.5)

    def _beats(self, t0: float, t1: float, omega: float) -> tuple[np.ndarray, np.ndarray]:
        dt = t1 - t0
        self._hr_noise += -self._hr_noise * dt / 5.0 + self.rng.normal(0, 1.2) * math.sqrt(dt)
        grid = np.linspace(t0, t1, 33)
        lagged_phase = self.phase + omega * (grid - t0 - self.physiology.rsa_lag_s)
        hr = self.hr_bpm(self.volume(lagged_phase))
        cum = self._beat_acc + np.concatenate(
            ([0.0], np.cumsum(0.5 * (hr[1:] + hr[:-1]) / 60.0 * np.diff(grid)))
        )
        k = np.arange(1, math.floor(cum[-1]) + 1)
        times = np.interp(k, cum, grid)
        times = np.round(times / RR_TICK_S) * RR_TICK_S  # the strap's 1/1024 s grid
        self._beat_acc = cum[-1] - math.floor(cum[-1])
        rr = []
        for t in times:
            if self._last_beat_s is not None:
                ticks = round((t - self._last_beat_s) / RR_TICK_S)
                rr.append(ticks * 1000.0 / 1024.0)
            else:
                rr.append(math.nan)
            self._last_beat_s = float(t)
        keep = ~np.isnan(np.array(rr, dtype=float)) if rr else np.zeros(0, bool)
        self._recent_beats = [b for b in self._recent_beats if b > t1 - 1.0] + list(times)
        return np.asarray(times)[keep], np.asarray(rr, dtype=float)[keep]

    # --------------------------------------------------------------- sensors
    def _acc(self, t: np.ndarray, phase: np.ndarray, beats: np.ndarray) -> np.ndarray:
        n = len(t)
        self._lean += self.rng.normal(0, 0.002) * math.sqrt(max(n, 1) / ACC_FS_HZ)
        lean, roll = self._lean, self._roll
        gravity = G_MG * np.array(
            [-math.cos(lean) * math.cos(roll), math.sin(roll), math.sin(lean) * math.cos(roll)]
        )
        vol = self.volume(phase) - 0.5 * self._depth
        out = gravity[None, :] + BREATH_TILT_MG * vol[:, None] * self._breath_axis[None, :]
        for b in beats:  # ballistocardiogram: a small damped jolt after each beat
            k = (t >= b) & (t < b + 0.25)
            out[k, 0] += 4.0 * np.sin(2 * math.pi * 8.0 * (t[k] - b)) * np.exp(-(t[k] - b) / 0.08)
        out += self.rng.normal(0, 2.0, out.shape)
        if self.talking and self._talk_rng is not None and n > 1:  # the voice on the chest
            hum = self._talk_rng.normal(0, TALK_VIBRATION_MG, (n + 1, 3))
            out += (hum[1:] - hum[:-1]) / math.sqrt(2.0)  # broadband, most above 20 Hz
        return out

    def _ecg(self, t: np.ndarray, t0: float, omega: float) -> np.ndarray:
        if len(t) == 0:
            return np.zeros(0)
        vol = self.volume(self.phase + omega * (t - t0)) / max(self._depth, 1e-6)
        out = 60.0 * (vol - 0.5) + self.rng.normal(0, 8.0, len(t))
        r_gain = 1.0 + 0.12 * self.physiology.edr_sign * (vol - 0.5)
        waves = ((0.02, -120.0, 0.010), (0.04, 1100.0, 0.009), (0.06, -250.0, 0.010),
                 (0.30, 250.0, 0.040))
        for b in self._recent_beats:
            d = t - b
            near = (d > -0.02) & (d < 0.5)
            if not near.any():
                continue
            for offset, amp, width in waves:
                gain = r_gain[near] if amp > 1000 else 1.0
                out[near] += gain * amp * np.exp(-0.5 * ((d[near] - offset) / width) ** 2)
        return out


def ecg_without_breath(beats_s: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """ECG (uV, :data:`ECG_FS_HZ`) with a Q-R-S-T at each beat time, its R wave scaled by
    band-passed (6-36/min) noise as large as a breath's scaling, and sensor noise: heart
    rate is the person's, the waves of the QRS carry no breath (a null for the ECG's
    breathing waves: docs/breathing.md, "When the phase is unknown")."""
    from scipy import signal

    t = np.arange(0.0, seconds, 1.0 / ECG_FS_HZ)
    sos = signal.butter(2, (0.1, 0.6), "bandpass", fs=ECG_FS_HZ, output="sos")
    gain = signal.sosfiltfilt(sos, rng.normal(0, 1, t.size))
    gain = 1.0 + 0.06 * gain / gain.std()
    out = rng.normal(0, 8.0, t.size)
    waves = ((0.02, -120.0, 0.010), (0.04, 1100.0, 0.009), (0.06, -250.0, 0.010),
             (0.30, 250.0, 0.040))
    for b in beats_s.tolist():
        i0, i1 = int((b - 0.02) * ECG_FS_HZ), min(int((b + 0.5) * ECG_FS_HZ) + 1, t.size)
        if i0 < 0 or i0 >= t.size:
            continue
        d = t[i0:i1] - b
        g = gain[min(int(b * ECG_FS_HZ), t.size - 1)]
        for offset, amp, width in waves:
            scale = (g if amp > 1000 else 1.0) * amp
            out[i0:i1] += scale * np.exp(-0.5 * ((d - offset) / width) ** 2)
    return out
