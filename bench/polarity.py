"""ECG polarity on the simulator, over several seeds: ECG alone, and ECG once chest motion
has taught the person's lag (docs/breathing.md, "Polarity").

The cases of tests/test_phase.py (rates 5-28/min, RSA lags 0 / 1 / 2.5 s, inhale fractions
0.3-0.45), each person drawn from seed + case index (seed 100 = the test's people). One
person feeds two estimators: ECG alone (as the test), and a strap that also sends chest
motion and beats until CHEST_STOPS_S, then ECG and beats only. Reported per case: whether
the held polarity of R amplitude is the person's EDR polarity at the end, and the phase
bias (circular mean error, deg) of the ECG-alone estimate after 60 s and of the ECG
window after CHEST_STOPS_S + 60 s.

Run: .venv/bin/python bench/polarity.py [SEED ...]   (default 100 200 300 400; ~1 min each)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from coach.breath import BreathEstimator
from coach.types import TWO_PI
from sims.person import Person, PersonSpec

RATES = (5.0, 8.0, 12.0, 15.0, 18.0, 22.0, 28.0)  # as tests/test_phase.py
LAGS = (0.0, 1.0, 2.5)
FRACS = (0.3, 0.35, 0.4, 0.45)
SECONDS, SETTLE_S, CHEST_STOPS_S = 180.0, 60.0, 60.0


def _bias_deg(e: list[float]) -> float:
    return float(np.degrees(np.angle(np.mean(np.exp(1j * np.array(e)))))) if e else float("nan")


def run(seed: int, rate: float, lag: float) -> dict[str, tuple[bool, float]]:
    i = RATES.index(rate) * len(LAGS) + LAGS.index(lag)
    spec = PersonSpec("A", arousal=0.3, compliance=0.0, natural_bpm=rate,
                      inhale_fraction=FRACS[i % len(FRACS)], rsa_lag_s=lag)
    person = Person(spec, np.random.default_rng(seed + i))
    alone, taught = BreathEstimator(), BreathEstimator()
    err: dict[str, list[float]] = {"alone": [], "taught": []}
    for k in range(1, int(SECONDS / 0.25) + 1):
        sig = person.advance(k * 0.25)
        alone.push_ecg(sig.ecg)
        if person.t_s <= CHEST_STOPS_S:
            taught.push_acc(sig.acc)
        taught.push_beats(tuple(sig.beat_t_s), tuple(sig.rr_ms))
        taught.push_ecg(sig.ecg)
        taught.estimate(person.t_s)  # the session's call; the ECG window's own phase is scored
        phases = {"alone": alone.estimate(person.t_s).phase,
                  "taught": taught.windows["ecg"].phase(person.t_s)}
        for name, start in (("alone", SETTLE_S), ("taught", CHEST_STOPS_S + SETTLE_S)):
            if person.t_s >= start and phases[name] is not None:
                err[name].append((phases[name] - person.phase + np.pi) % TWO_PI - np.pi)
    edr = person.physiology.edr_sign
    return {name: (bool(est.windows["ecg"].signs[1] == edr), _bias_deg(err[name]))
            for name, est in (("alone", alone), ("taught", taught))}


def main() -> None:
    logging.disable(logging.WARNING)
    seeds = [int(a) for a in sys.argv[1:]] or [100, 200, 300, 400]
    res = {(s, r, g): run(s, r, g) for s in seeds for r in RATES for g in LAGS}
    print(f"seeds {seeds}: sign right (of {len(seeds)}) / bias deg per seed, lags 0 / 1 / 2.5 s\n")
    print("| rate /min | ECG alone: sign right | ECG alone: bias | taught: sign right "
          "| taught: bias |")
    print("|---|---|---|---|---|")
    for r in RATES:
        cells = []
        for name in ("alone", "taught"):
            right = " / ".join(str(sum(res[s, r, g][name][0] for s in seeds)) for g in LAGS)
            bias = " / ".join(",".join(f"{res[s, r, g][name][1]:.0f}" for s in seeds) for g in LAGS)
            cells += [right, bias]
        print(f"| {r:g} | " + " | ".join(cells) + " |")
    for name in ("alone", "taught"):
        n = sum(v[name][0] for v in res.values())
        print(f"\n{name}: sign right in {n} of {len(res)} cases")


if __name__ == "__main__":
    main()
