"""Live ECG breath phase against the impedance wave (MARSH), with leave-one-out figures.

Scores ``coach analyze --ecg F --causal`` (the live phase, in-process) exactly as
``../shared/tools/phase_eval.py`` does (its reference phase and score are imported from
it), then fits what is tuned here, the ECG phase delay (``coach.breath.PHASE_DELAY_S``),
on nine recordings and scores the tenth with it: the leave-one-recording-out figure.

Run: .venv/bin/python bench/phase_loo.py [DATA_DIR]   (default ../shared/data)
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from coach import breath
from coach.analyze import analyze_ecg

ROOT = Path(__file__).resolve().parents[1]
DELAYS_S = np.round(np.arange(-1.5, 1.51, 0.05), 2)  # candidate ECG phase delays


def _phase_eval(data: Path):  # the shared scorer, used as it lies
    path = data.parent / "tools" / "phase_eval.py"
    spec = importlib.util.spec_from_file_location("phase_eval", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    pe = _phase_eval(data)
    used = breath.PHASE_DELAY_S["ecg"]
    recs = sorted(p for p in (data / "recordings").glob("marsh_*") if (p / "IP.mat").exists())
    runs = {}
    for rec in recs:
        ecg_v, ip, marks = pe.load(rec)
        ref, period = pe.reference_phase(ip, marks)
        x = resample_poly(ecg_v, 13, 25) * 1e6  # 130 Hz, uV: what phase_eval writes
        a = analyze_ecg(x, 130.0, causal=True)
        runs[rec.name] = (a.phase_t_s, a.phase, ref, period)
        s = pe.score(a.phase_t_s, a.phase, ref)
        s.pop("_abs")
        print(json.dumps({"recording": rec.name, "delay_s": used, **s}), file=sys.stderr)

    def errors(name: str, extra_s: float) -> np.ndarray:
        """|error| (rad) with the phase delay moved by ``extra_s`` (at the recording's rate)."""
        ts, ph, ref, period = runs[name]
        return pe.score(ts, (ph + 2 * np.pi * extra_s / period) % (2 * np.pi), ref)["_abs"]

    def pooled_median(names: list[str], extra_s: float) -> float:
        return float(np.median(np.concatenate([errors(n, extra_s) for n in names])))

    names = list(runs)
    loo, fits = [], {}
    for held in names:
        rest = [n for n in names if n != held]
        best = min(DELAYS_S, key=lambda d: pooled_median(rest, d))
        fits[held] = round(used + float(best), 2)
        loo.append(errors(held, float(best)))
    all_best = min(DELAYS_S, key=lambda d: pooled_median(names, d))
    in_sample = np.concatenate([errors(n, 0.0) for n in names])
    tuned = np.concatenate([errors(n, float(all_best)) for n in names])
    held_out = np.concatenate(loo)
    deg = np.degrees
    print(json.dumps({
        "recordings": len(names),
        "delay_s_in_use": used,
        "in_use_median_abs_deg": round(float(deg(np.median(in_sample))), 1),
        "in_use_mean_abs_deg": round(float(deg(np.mean(in_sample))), 1),
        "best_delay_s_all": round(used + float(all_best), 2),
        "best_all_median_abs_deg": round(float(deg(np.median(tuned))), 1),
        "loo_median_abs_deg": round(float(deg(np.median(held_out))), 1),
        "loo_mean_abs_deg": round(float(deg(np.mean(held_out))), 1),
        "loo_delays_s": fits,
    }))


if __name__ == "__main__":
    main()
