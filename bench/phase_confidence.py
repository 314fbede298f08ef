"""When is the live ECG phase known? Its confidence, a null, the simulator and MARSH.

The confidence is :meth:`coach.respiration.BreathWindow.agreement`: how well the ECG's
breathing waves (QRS-morphology score, QRS area) agree with heart rate at the best lag.
``coach.breath.PHASE_GATE`` makes the ECG phase unknown below it.

``--part null``: the gate's null. Simulated people (each its own physiology, rates 8-24/min)
whose ECG is rebuilt at their own beats with the R wave scaled by band-passed noise (no
breath in the ECG's waves; heart rate keeps its breath, or, ``rsa 0``, none): the
confidence's percentiles after the first minute. The gate is their 95th percentile.
``--part sim``: the same people with the simulator's own ECG (breath in the R wave): the
confidence's percentiles and the share of the phase known after the first minute.
``--part marsh``: the live ECG phase (``coach analyze --ecg --causal``, in-process), scored
as ``../shared/tools/phase_eval.py`` scores it, at several gates: per recording and pooled
median / mean |error| and unknown %, the median error per confidence quintile, and the
leave-one-recording-out figure (on nine recordings, the lowest gate whose pooled median is
<= 45 deg; the tenth scored with it).

Run: .venv/bin/python bench/phase_confidence.py [--part null|sim|marsh] [DATA_DIR]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.phase_loo import marsh_args, marsh_recordings, phase_eval_module
from coach import breath
from coach.analyze import analyze_ecg
from coach.breath import BreathEstimator
from coach.types import TWO_PI, EcgChunk
from sims.person import ECG_FS_HZ, Person, PersonSpec, ecg_without_breath

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = 30
SECONDS = 240.0
SETTLE_S = 60.0
GATES = tuple(sorted({0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, breath.PHASE_GATE}))
GOAL_DEG = 45.0


def person(i: int, rsa: bool = True) -> Person:
    rng = np.random.default_rng(1000 + i)
    rate = float(rng.uniform(8.0, 24.0))
    spec = PersonSpec("A", arousal=0.3, compliance=0.0, natural_bpm=rate,
                      rsa_bpm=8.0 if rsa else 0.0)
    return Person(spec, rng)


def run(i: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidence, phase error (rad, NaN = unknown) and whether the phase is known, once
    a second after SETTLE_S, for person ``i``: ``kind`` "sim" (the simulator's ECG),
    "noise" (noise waves beside the person's heart rate), "noise-rsa0" (and no RSA)."""
    p = person(i, rsa=kind != "noise-rsa0")
    sigs, beats, truth = [], [], []
    for k in range(1, int(SECONDS / 0.25) + 1):
        s = p.advance(k * 0.25)
        sigs.append(s.ecg)
        beats += s.beat_t_s.tolist()
        truth.append((p.t_s, p.phase))
    est = BreathEstimator()
    if kind == "sim":
        feeds = sigs
    else:
        x = ecg_without_breath(np.array(beats), SECONDS, np.random.default_rng(2000 + i))
        n = round(0.25 * ECG_FS_HZ)
        feeds = [EcgChunk(j / ECG_FS_HZ, "A", ECG_FS_HZ, x[j : j + n]) for j in range(0, x.size, n)]
    conf, err = [], []
    for k, chunk in enumerate(feeds):
        est.push_ecg(chunk)
        t = (k + 1) * 0.25
        e = est.estimate(t)
        if t < SETTLE_S or k % 4:
            continue
        conf.append(math.nan if e.phase_confidence is None else e.phase_confidence)
        true = truth[min(k, len(truth) - 1)][1]
        err.append(math.nan if e.phase is None else (e.phase - true + math.pi) % TWO_PI - math.pi)
    c, er = np.array(conf), np.array(err)
    return c, er, np.isfinite(er)


def _pct(x: np.ndarray) -> dict[str, float]:
    x = np.nan_to_num(x, nan=-1.0)
    return {f"p{q}": round(float(np.quantile(x, q / 100)), 3) for q in (5, 50, 95, 99)}


def part_null() -> None:
    for kind in ("noise", "noise-rsa0"):
        c = np.concatenate([run(i, kind)[0] for i in range(PEOPLE)])
        print(json.dumps({"null": kind, "people": PEOPLE, **_pct(c),
                          "pass_percent": round(100 * float(np.mean(c >= breath.PHASE_GATE)), 1),
                          "gate": breath.PHASE_GATE}), flush=True)


def part_sim() -> None:
    cs, ks, es = [], [], []
    for i in range(PEOPLE):
        c, e, known = run(i, "sim")
        cs.append(c)
        ks.append(known)
        es.append(e[known])
        p = person(i)
        print(json.dumps({"person": i, "rate_bpm": round(p.spec.natural_bpm or 0, 1),
                          "rsa_lag_s": round(p.physiology.rsa_lag_s, 2),
                          "confidence_median": round(float(np.nanmedian(c)), 2),
                          "known_percent": round(100 * float(known.mean()), 1),
                          "median_abs_deg": round(float(np.degrees(np.median(np.abs(e[known])))), 1)
                          if known.any() else None}), flush=True)
    c = np.concatenate(cs)
    print(json.dumps({"sim": "ECG alone", **_pct(c),
                      "known_percent": round(100 * float(np.mean(np.concatenate(ks))), 1),
                      "median_abs_deg": round(float(np.degrees(np.median(np.abs(
                          np.concatenate(es))))), 1)}))


def _marsh_runs(pe, recs: list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per recording: the confidence and the |error| (deg, NaN = unknown) at every
    sample phase_eval trusts, the phase never gated."""
    seen: list[tuple[float, float]] = []
    analyse = BreathEstimator._analyse

    def logged(self: BreathEstimator, t_s: float) -> breath.BreathEstimate:
        e = analyse(self, t_s)
        seen.append((t_s, math.nan if e.phase_confidence is None else e.phase_confidence))
        return e

    gate = breath.PHASE_GATE
    BreathEstimator._analyse = logged  # type: ignore[method-assign]
    breath.PHASE_GATE = -math.inf  # type: ignore[misc]
    out = {}
    try:
        for rec in recs:
            seen.clear()
            ecg_v, ip, marks = pe.load(rec)
            ref, _ = pe.reference_phase(ip, marks)
            a = analyze_ecg(signal.resample_poly(ecg_v, 13, 25) * 1e6, 130.0, causal=True)
            ts, ph = a.phase_t_s, a.phase
            s = np.array(seen)
            k = np.searchsorted(s[:, 0], ts + 1e-6, side="right") - 1
            conf = np.where(k >= 0, s[np.maximum(k, 0), 1], np.nan)
            r = ref[np.clip((ts * pe.FS).astype(int), 0, len(ref) - 1)]
            trusted = np.isfinite(r) & (ts >= 60.0)  # as phase_eval.score
            err = np.degrees(np.abs(np.angle(np.exp(1j * (ph - r)))))
            out[rec.name] = (conf[trusted], err[trusted])
            print(f"{rec.name}: analysed", file=sys.stderr, flush=True)
    finally:
        BreathEstimator._analyse = analyse  # type: ignore[method-assign]
        breath.PHASE_GATE = gate  # type: ignore[misc]
    return out


def _gated(runs: dict[str, tuple[np.ndarray, np.ndarray]], gate: float, names: list[str]):
    errs, unknown = [], []
    for n in names:
        c, e = runs[n]
        keep = np.isfinite(e) & (np.nan_to_num(c, nan=-math.inf) >= gate)
        errs.append(e[keep])
        unknown.append(100.0 * (1.0 - keep.mean()))
    return errs, unknown


def _fig(e: np.ndarray) -> tuple[float | None, float | None]:
    if not e.size:
        return None, None
    return round(float(np.median(e)), 1), round(float(np.mean(e)), 1)


def part_marsh(pe, recs: list[Path]) -> None:
    runs = _marsh_runs(pe, recs)
    names = list(runs)
    for gate in GATES:
        errs, unknown = _gated(runs, gate, names)
        med, mean = _fig(np.concatenate(errs))
        print(json.dumps({"gate": gate, "median_abs_deg": med, "mean_abs_deg": mean,
                          "unknown_percent_mean": round(float(np.mean(unknown)), 1),
                          "per_recording": {n[-4:]: [_fig(e)[0], round(u, 1)] for n, e, u in
                                            zip(names, errs, unknown, strict=True)}}), flush=True)
    c = np.concatenate([runs[n][0] for n in names])
    e = np.concatenate([runs[n][1] for n in names])
    ok = np.isfinite(c) & np.isfinite(e)
    edges = np.quantile(c[ok], [0.2, 0.4, 0.6, 0.8])
    b = np.digitize(c[ok], edges)
    print(json.dumps({"quintile_upper_confidence": [round(float(v), 2) for v in edges] + [None],
                      "quintile_median_abs_deg": [round(float(np.median(e[ok][b == i])), 1)
                                                  for i in range(5)]}), flush=True)
    gate = breath.PHASE_GATE
    for label, group in (("all", names), ("waves carry the breath", [n for n in names if not any(
            n.endswith(r) for r in ("2655", "4909", "5329"))])):
        c = np.concatenate([runs[n][0] for n in group])
        e = np.concatenate([runs[n][1] for n in group])
        ok = np.isfinite(e)
        kept = ok & (np.nan_to_num(c, nan=-math.inf) >= gate)
        print(json.dumps({"recordings": label, "gate": gate,
                          "kept_median_abs_deg": _fig(e[kept])[0],
                          "discarded_median_abs_deg": _fig(e[ok & ~kept])[0],
                          "discarded_percent": round(100.0 * float(np.mean(~kept[ok])), 1)}))
    held_err, held_unknown, chosen = [], [], {}
    for n in names:
        nine = [m for m in names if m != n]
        pick = GATES[-1]
        for gate in GATES:
            errs, _ = _gated(runs, gate, nine)
            if float(np.median(np.concatenate(errs))) <= GOAL_DEG:
                pick = gate
                break
        chosen[n[-4:]] = pick
        errs, unknown = _gated(runs, pick, [n])
        held_err += errs
        held_unknown += unknown
    med, mean = _fig(np.concatenate(held_err))
    unknown = round(float(np.mean(held_unknown)), 1)
    print(json.dumps({"leave_one_out": {"median_abs_deg": med, "mean_abs_deg": mean,
                                        "unknown_percent_mean": unknown,
                                        "gate_chosen": chosen}}))


def main() -> None:
    part, data = marsh_args(__doc__, ("marsh", "null", "sim"))
    if part == "null":
        part_null()
    elif part == "sim":
        part_sim()
    else:
        part_marsh(phase_eval_module(data), marsh_recordings(data))


if __name__ == "__main__":
    main()
