"""Accelerometer breathing accuracy on simulated chest motion with artifacts.

No public Polar H10 recording with a breathing reference exists (see
docs/breathing.md), so the chest-accelerometer path is measured on
:class:`sims.person.Person`, whose true breath phase is known, with artifacts
injected here into the 200 Hz ACC stream (sims/ is not changed):

- posture shifts: the gravity vector turns by 10-25 degrees within 1.5 s and stays;
- talking: 20 s of irregular trunk motion (0.3-3 Hz band-limited noise, 8 mG rms) and
  voice vibration (aliased, 3 mG rms white);
- a cough: three 150 mG damped 6 Hz jolts 0.3 s apart plus a 60 mG chest squeeze.

Protocol as bench/accuracy.py: 32 s windows every 16 s; truth = 60 x (true inhale
onsets intervals inside) / their duration; estimate = mean of the live 1 Hz rate
inside; a window without an estimate counts :data:`MISS_ERROR_BPM`. Every window
counts, artifact or not. The estimator is the live one the session uses
(:class:`coach.breath.BreathEstimator` fed ACC chunks and the strap's beats).

Run: .venv/bin/python bench/acc_sim.py [--out FILE.md]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coach.breath import BreathEstimator
from coach.types import TWO_PI, AccChunk
from sims.person import ACC_FS_HZ, STEP_S, Person, PersonSpec

WIN_S, HOP_S = 32.0, 16.0
MISS_ERROR_BPM = 10.0
DURATION_S = 600.0
WARMUP_S = 60.0  # s before the first scored window (the estimator's window fills)


def artifacts(n: int, rng: np.random.Generator) -> np.ndarray:
    """Additive artifact track (n, 3) in mG at 200 Hz: 2 posture shifts, talking, a cough."""
    fs = ACC_FS_HZ
    out = np.zeros((n, 3))
    t = np.arange(n) / fs
    for at in rng.uniform(0.15, 0.9, 2) * n / fs:  # posture shifts
        ang = math.radians(rng.uniform(10, 25)) * rng.choice([-1, 1])
        g = np.array([-1000.0, 0.0, 0.0])
        rot = np.array([-math.cos(ang), 0.0, math.sin(ang)]) * 1000.0
        ramp = np.clip((t - at) / 1.5, 0, 1)[:, None]
        out += ramp * (rot - g)[None, :]
        k = (t >= at) & (t < at + 1.5)
        out[k] += rng.normal(0, 30.0, (k.sum(), 3))  # the movement itself
    at = rng.uniform(0.2, 0.8) * n / fs  # talking
    k = (t >= at) & (t < at + 20.0)
    sos = signal.butter(2, (0.3, 3.0), "bandpass", fs=fs, output="sos")
    trunk = signal.sosfilt(sos, rng.normal(0, 1, (k.sum(), 3)), axis=0)
    out[k] += 8.0 * trunk / trunk.std() + rng.normal(0, 3.0, (k.sum(), 3))
    at = rng.uniform(0.2, 0.8) * n / fs  # a cough
    for j in range(3):
        d = t - at - 0.3 * j
        k = (d >= 0) & (d < 0.6)
        out[k] += (150.0 * np.sin(2 * np.pi * 6.0 * d[k]) * np.exp(-d[k] / 0.1))[:, None] * [
            0.6,
            0.3,
            0.75,
        ]
    d = t - at
    out += (-60.0 * np.exp(-0.5 * ((d - 0.6) / 0.4) ** 2))[:, None] * [0.25, 0.15, 1.0]
    return out


def run(arousal: float, seed: int, with_artifacts: bool) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    person = Person(PersonSpec("A", arousal=arousal), rng.spawn(1)[0])
    art = artifacts(round(DURATION_S * ACC_FS_HZ) + 1, rng) if with_artifacts else None
    est = BreathEstimator()
    onsets, rate_t, rate, src = [], [], [], []
    prev = person.phase
    elapsed = 0.0
    for k in range(1, round(DURATION_S / STEP_S) + 1):
        sig = person.advance(k * STEP_S)
        if person.phase < prev:  # the true breath wrapped: an inhale onset
            frac = (TWO_PI - prev) / (person.phase + TWO_PI - prev)
            onsets.append(person.t_s - STEP_S + STEP_S * frac)
        prev = person.phase
        acc = sig.acc
        if art is not None:
            i0 = round(acc.t_s * ACC_FS_HZ)
            acc = AccChunk(acc.t_s, "A", acc.fs_hz, acc.acc_mg + art[i0 : i0 + len(acc.acc_mg)])
        t0 = time.perf_counter()
        est.push_acc(acc)
        est.push_beats(tuple(sig.beat_t_s), tuple(sig.rr_ms))
        e = est.estimate(person.t_s)
        elapsed += time.perf_counter() - t0
        if k % round(1 / STEP_S) == 0:
            rate_t.append(person.t_s)
            rate.append(math.nan if e.rate_bpm is None else e.rate_bpm)
            src.append(e.source)
    return score(np.array(onsets), np.array(rate_t), np.array(rate), src, elapsed)


def score(
    onsets: np.ndarray, t: np.ndarray, bpm: np.ndarray, src: list[str | None], cpu_s: float
) -> dict[str, float]:
    errs = []
    for a in np.arange(WARMUP_S, DURATION_S - WIN_S + 1e-9, HOP_S):
        m = onsets[(onsets >= a) & (onsets < a + WIN_S)]
        truth = 60.0 * (m.size - 1) / (m[-1] - m[0])
        sel = bpm[(t >= a) & (t < a + WIN_S)]
        sel = sel[np.isfinite(sel)]
        errs.append(abs(sel.mean() - truth) if sel.size else MISS_ERROR_BPM)
    late = [s for s, tt in zip(src, t, strict=True) if tt >= WARMUP_S]
    return {
        "windows": float(len(errs)),
        "mae": float(np.mean(errs)),
        "max_err": float(np.max(errs)),
        "acc_share": float(np.mean([s == "acc" for s in late])),
        "cpu_s": cpu_s,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    args = ap.parse_args()
    lines = [
        "| arousal | seed | artifacts | windows | MAE /min | max err | acc share | cpu s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    maes: dict[bool, list[float]] = {False: [], True: []}
    for arousal in (0.1, 0.5, 0.9):
        for seed in (1, 2, 3):
            for art in (False, True):
                r = run(arousal, seed, art)
                maes[art].append(r["mae"])
                lines.append(
                    f"| {arousal} | {seed} | {'yes' if art else 'no'} | {r['windows']:.0f} | "
                    f"{r['mae']:.2f} | {r['max_err']:.2f} | {r['acc_share']:.2f} | "
                    f"{r['cpu_s']:.2f} |"
                )
    lines.append(
        f"\nMean MAE: clean {np.mean(maes[False]):.2f}/min, "
        f"with artifacts {np.mean(maes[True]):.2f}/min (target <= 0.5)."
    )
    md = "\n".join(lines)
    print(md)
    if args.out:
        args.out.write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
