"""Live ECG breath phase against the impedance wave (MARSH), with leave-one-out figures.

Scores ``coach analyze --ecg F --causal`` (the live phase, in-process) exactly as
``../shared/tools/phase_eval.py`` does (its reference phase and score are imported from
it), then fits what is tuned here, the ECG phase delay (``coach.breath.PHASE_DELAY_S``),
on nine recordings (on their phases without a delay, moved at each recording's mean
period) and runs the tenth live with it: the leave-one-recording-out figure.

Run: .venv/bin/python bench/phase_loo.py [DATA_DIR]   (default ../shared/data)
     .venv/bin/python bench/phase_loo.py --bound [DATA_DIR]: what prediction alone costs:
     the reference's own inhale onsets, known DELAY s after they happen, extrapolated with
     the last breath's period (no coach involved), scored the same way.
     .venv/bin/python bench/phase_loo.py --width [DATA_DIR]: the ecHT band's width
     (``coach.respiration.ECHT_WIDTH``, chosen on the simulator) as if tuned here: each
     candidate run live on all ten, the width fitted on nine, the tenth's figure at it.
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
from coach import respiration as resp
from coach.analyze import analyze_ecg

ROOT = Path(__file__).resolve().parents[1]
DELAYS_S = np.round(np.arange(-1.5, 1.51, 0.05), 2)  # candidate ECG phase delays
WIDTHS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # candidate ecHT band widths (x the rate)


def _phase_eval(data: Path):  # the shared scorer, used as it lies
    path = data.parent / "tools" / "phase_eval.py"
    spec = importlib.util.spec_from_file_location("phase_eval", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bound(pe, recs: list[Path]) -> None:
    """The error of a phase extrapolated from the true onsets, known ``delay`` s late."""
    fs = pe.FS
    refs = [pe.reference_phase(*pe.load(rec)[1:])[0] for rec in recs]
    for delay in (0.0, 0.5, 1.0, 1.5):
        errs = []
        for ref in refs:
            onsets = np.flatnonzero(np.diff(ref) < -np.pi) + 1  # where the phase wraps
            ts = np.arange(60.0, ref.size / fs, 0.1)
            k = np.searchsorted(onsets / fs, ts - delay, side="right")  # onsets known at ts
            ok = k >= 2
            last, prev = onsets[np.maximum(k - 1, 0)] / fs, onsets[np.maximum(k - 2, 0)] / fs
            est = np.where(ok, 2 * np.pi * (ts - last) / np.maximum(last - prev, 1e-9), np.nan)
            errs.append(pe.score(ts, est % (2 * np.pi), ref)["_abs"])
        e = np.degrees(np.concatenate(errs))
        print(json.dumps({"onsets_known_after_s": delay, "median_abs_deg": round(float(
            np.median(e)), 1), "mean_abs_deg": round(float(np.mean(e)), 1)}))


def widths(pe, loaded: dict) -> None:
    """Leave-one-recording-out figure of the ecHT band's width (fitted on nine)."""
    used = resp.ECHT_WIDTH
    errs = {}
    for w in WIDTHS:
        resp.ECHT_WIDTH = w  # type: ignore[misc]
        try:
            for name, (x, ref, _) in loaded.items():
                a = analyze_ecg(x, 130.0, causal=True)
                errs[w, name] = pe.score(a.phase_t_s, a.phase, ref)["_abs"]
        finally:
            resp.ECHT_WIDTH = used  # type: ignore[misc]
        pooled = np.degrees(np.concatenate([errs[w, n] for n in loaded]))
        print(json.dumps({"width": w, "median_abs_deg": round(float(np.median(pooled)), 1),
                          "mean_abs_deg": round(float(np.mean(pooled)), 1)}), file=sys.stderr)
    fits, held = {}, []
    for name in loaded:
        rest = [n for n in loaded if n != name]
        fits[name] = min(WIDTHS, key=lambda w: float(np.median(np.concatenate(
            [errs[w, n] for n in rest]))))
        held.append(errs[fits[name], name])
    v = np.degrees(np.concatenate(held))
    print(json.dumps({"width_in_use": used, "loo_median_abs_deg": round(float(np.median(v)), 1),
                      "loo_mean_abs_deg": round(float(np.mean(v)), 1), "loo_widths": fits}))


def main() -> None:
    args = [a for a in sys.argv[1:] if a not in ("--bound", "--width")]
    data = Path(args[0]) if args else ROOT.parent / "shared" / "data"
    pe = _phase_eval(data)
    if "--bound" in sys.argv[1:]:
        bound(pe, sorted(p for p in (data / "recordings").glob("marsh_*")
                         if (p / "IP.mat").exists()))
        return
    used = breath.PHASE_DELAY_S["ecg"]
    recs = sorted(p for p in (data / "recordings").glob("marsh_*") if (p / "IP.mat").exists())
    loaded = {}
    for rec in recs:
        ecg_v, ip, marks = pe.load(rec)
        ref, period = pe.reference_phase(ip, marks)
        loaded[rec.name] = (resample_poly(ecg_v, 13, 25) * 1e6, ref, period)  # 130 Hz, uV
    if "--width" in sys.argv[1:]:
        widths(pe, loaded)
        return

    def live(name: str, delay_s: float) -> dict:
        """The live phase of a recording with the ECG phase delay set to ``delay_s``."""
        x, ref, _ = loaded[name]
        breath.PHASE_DELAY_S["ecg"] = delay_s  # type: ignore[index]
        try:
            a = analyze_ecg(x, 130.0, causal=True)
        finally:
            breath.PHASE_DELAY_S["ecg"] = used  # type: ignore[index]
        return pe.score(a.phase_t_s, a.phase, ref)

    names = list(loaded)
    base = {}  # phases without any delay: what the fit starts from
    for name in names:
        x, ref, period = loaded[name]
        breath.PHASE_DELAY_S["ecg"] = 0.0  # type: ignore[index]
        try:
            a = analyze_ecg(x, 130.0, causal=True)
        finally:
            breath.PHASE_DELAY_S["ecg"] = used  # type: ignore[index]
        base[name] = (a.phase_t_s, a.phase, ref, period)

    def errors(name: str, delay_s: float) -> np.ndarray:
        """|error| (rad) with the phase moved by ``delay_s`` (at the recording's rate)."""
        ts, ph, ref, period = base[name]
        return pe.score(ts, (ph + 2 * np.pi * delay_s / period) % (2 * np.pi), ref)["_abs"]

    def pooled_median(group: list[str], delay_s: float) -> float:
        return float(np.median(np.concatenate([errors(n, delay_s) for n in group])))

    in_use, held_out, fits = [], [], {}
    for held in names:
        s = live(held, used)
        in_use.append(s.pop("_abs"))
        print(json.dumps({"recording": held, "delay_s": used, **s}), file=sys.stderr)
        # fitted on the other nine, then run live on the held-out one with that delay
        rest = [n for n in names if n != held]
        fits[held] = float(min(DELAYS_S, key=lambda d: pooled_median(rest, d)))
        held_out.append(live(held, fits[held])["_abs"])
    all_best = float(min(DELAYS_S, key=lambda d: pooled_median(names, d)))
    deg = np.degrees
    in_use_v, held_v = np.concatenate(in_use), np.concatenate(held_out)
    print(json.dumps({
        "recordings": len(names),
        "delay_s_in_use": used,
        "in_use_median_abs_deg": round(float(deg(np.median(in_use_v))), 1),
        "in_use_mean_abs_deg": round(float(deg(np.mean(in_use_v))), 1),
        "no_delay_median_abs_deg": round(float(deg(pooled_median(names, 0.0))), 1),
        "best_delay_s_all": all_best,
        "loo_median_abs_deg": round(float(deg(np.median(held_v))), 1),
        "loo_mean_abs_deg": round(float(deg(np.mean(held_v))), 1),
        "loo_delays_s": fits,
    }))


if __name__ == "__main__":
    main()
