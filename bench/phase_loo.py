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
     .venv/bin/python bench/phase_loo.py --params [DATA_DIR]: every live-phase parameter
     of the ECG window as if tuned here (its ecHT width and weight, ``breath.ECG_ECHT``,
     ``respiration.PHASE_EVENTS`` and the ECG phase delay): each recording run live
     once, every call of ``respiration._live_phase`` replayed with each candidate (the
     replay at the parameters in use reproduces the live phase exactly: checked), the
     candidate fitted on nine (also only among those ``SIM_OK`` lists), the tenth's
     figure at it.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from coach import breath
from coach import respiration as resp
from coach.analyze import analyze_ecg
from coach.types import TWO_PI

ROOT = Path(__file__).resolve().parents[1]
DELAYS_S = np.round(np.arange(-1.5, 1.51, 0.05), 2)  # candidate ECG phase delays
WIDTHS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # candidate ecHT band widths (x the rate)
EVENTS = (1, 2, 3, 4)  # candidate PHASE_EVENTS
WEIGHTS = (0.5, 1.0, 2.0)  # candidate ecHT weights (against the events)
# (width, events, weight) that would keep the simulator's chest-motion bounds
# (tests/test_phase.py: |bias| <= 25, median <= 35 deg in all 21 cases) if chest motion
# used them too, measured on main af1aaad by replaying each case's live-phase calls the
# same way (docs/breathing.md, "Live ECG phase vs the impedance wave")
SIM_OK = ((0.75, 1, 0.5), (0.75, 1, 1.0), (0.75, 1, 2.0), (0.75, 2, 0.5), (0.75, 2, 1.0),
          (0.75, 2, 2.0), (0.75, 3, 0.5), (0.75, 3, 1.0), (0.75, 3, 2.0), (0.75, 4, 1.0),
          (0.75, 4, 2.0), (1.0, 1, 0.5), (1.0, 1, 1.0), (1.0, 2, 0.5), (1.0, 2, 1.0),
          (1.0, 3, 0.5), (1.0, 3, 1.0), (1.0, 4, 0.5), (1.0, 4, 1.0), (1.25, 1, 0.5),
          (1.25, 2, 0.5), (1.25, 3, 0.5), (1.25, 4, 0.5), (1.25, 4, 1.0), (1.5, 1, 0.5),
          (1.5, 2, 0.5), (1.5, 3, 0.5), (1.5, 4, 0.5), (1.75, 3, 0.5), (1.75, 4, 0.5))


def phase_eval_module(data: Path):  # the shared scorer, used as it lies (bench/ shares it)
    path = data.parent / "tools" / "phase_eval.py"
    spec = importlib.util.spec_from_file_location("phase_eval", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def marsh_args(doc: str | None, parts: tuple[str, ...] = (),
               flags: tuple[str, ...] = ()) -> tuple[str, Path]:
    """``[--part P | --FLAG] [DATA_DIR]`` of the bench scripts that score MARSH: the part
    (or the flag given, "" for none) and the data folder (../shared/data by default)."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    if parts:
        ap.add_argument("--part", choices=parts, default=parts[0])
    for f in flags:
        ap.add_argument(f"--{f}", action="store_true")
    ap.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    a = ap.parse_args()
    part = getattr(a, "part", "")
    return next((f for f in flags if getattr(a, f)), part), a.data


def marsh_recordings(data: Path) -> list[Path]:
    """The MARSH recordings with an impedance wave, in name order."""
    return sorted(p for p in (data / "recordings").glob("marsh_*") if (p / "IP.mat").exists())


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


def params(pe, loaded: dict) -> None:
    """Leave-one-recording-out figure of (width, events, ecHT weight, ECG delay)."""
    in_use = (breath.ECG_ECHT[0], resp.PHASE_EVENTS, breath.ECG_ECHT[1])
    events = resp.PHASE_EVENTS
    delay = breath.PHASE_DELAY_S["ecg"]
    live_phase = resp._live_phase
    errs: dict[tuple, np.ndarray] = {}
    for name, (x, ref, _) in loaded.items():
        calls: list = []

        def recorded(st, rate_bpm, frac, t_s, fs_hz, width, weight, calls=calls):
            out = live_phase(st, rate_bpm, frac, t_s, fs_hz, width, weight)
            calls.append((t_s - delay, (st, rate_bpm, frac, t_s - delay, fs_hz), out))
            return out

        resp._live_phase = recorded  # type: ignore[assignment]
        try:
            a = analyze_ecg(x, 130.0, causal=True)
        finally:
            resp._live_phase = live_phase  # type: ignore[assignment]
        # each reported phase is its analysis's, advanced to its time: move it by what
        # the candidate moves that analysis's phase
        call_t = np.array([c[0] for c in calls])
        k = np.searchsorted(call_t, a.phase_t_s + 1e-6, side="right") - 1
        w = np.array([TWO_PI * c[1][1] / 60.0 for c in calls])
        base = np.array([np.nan if c[2] is None else c[2] for c in calls])
        for cand in itertools.product(WIDTHS, EVENTS, WEIGHTS):
            resp.PHASE_EVENTS = cand[1]  # type: ignore[misc]
            try:
                new = np.array([np.nan if c[2] is None else live_phase(*c[1], cand[0], cand[2])
                                for c in calls])
            finally:
                resp.PHASE_EVENTS = events  # type: ignore[misc]
            moved = a.phase + (new - base)[k]
            if cand == in_use:  # the replay is exact
                assert np.allclose(np.exp(1j * (moved + w[k] * delay))[~np.isnan(a.phase)],
                                   np.exp(1j * a.phase)[~np.isnan(a.phase)])
            for d in DELAYS_S:
                if abs(d) <= 0.6:
                    errs[(*cand, float(d), name)] = pe.score(
                        a.phase_t_s, (moved + w[k] * (d - delay)) % TWO_PI, ref)["_abs"]
    names, deg = list(loaded), np.degrees
    cands = sorted({c[:4] for c in errs})

    def fitted(pool: list) -> None:
        held, fits = [], {}
        for h in names:
            rest = [n for n in names if n != h]
            fits[h] = min(pool, key=lambda c: float(np.median(np.concatenate(
                [errs[(*c, n)] for n in rest]))))
            held.append(errs[fits[h] + (h,)])
        best = min(pool, key=lambda c: float(np.median(np.concatenate(
            [errs[(*c, n)] for n in names]))))
        ins, v = deg(np.concatenate([errs[(*best, n)] for n in names])), deg(np.concatenate(held))
        print(json.dumps({"candidates": len(pool), "in_sample_best": best,
                          "in_sample_median_abs_deg": round(float(np.median(ins)), 1),
                          "in_sample_mean_abs_deg": round(float(np.mean(ins)), 1),
                          "loo_median_abs_deg": round(float(np.median(v)), 1),
                          "loo_mean_abs_deg": round(float(np.mean(v)), 1),
                          "loo_fits": fits}))

    used = (*in_use, delay)
    v = deg(np.concatenate([errs[(*used, n)] for n in names]))
    print(json.dumps({"in_use": used, "median_abs_deg": round(float(np.median(v)), 1),
                      "mean_abs_deg": round(float(np.mean(v)), 1)}))
    fitted([c for c in cands if c[:3] == in_use])  # the delay alone
    fitted([c for c in cands if c[:3] in SIM_OK and c[3] == delay])  # within the bounds
    fitted([c for c in cands if c[:3] in SIM_OK])  # the same and the delay
    fitted([c for c in cands if c[3] == delay])  # any (width, events, weight)
    fitted(cands)  # anything


def main() -> None:
    part, data = marsh_args(__doc__, flags=("bound", "params"))
    pe = phase_eval_module(data)
    recs = marsh_recordings(data)
    if part == "bound":
        bound(pe, recs)
        return
    used = breath.PHASE_DELAY_S["ecg"]
    loaded = {}
    for rec in recs:
        ecg_v, ip, marks = pe.load(rec)
        ref, period = pe.reference_phase(ip, marks)
        loaded[rec.name] = (resample_poly(ecg_v, 13, 25) * 1e6, ref, period)  # 130 Hz, uV
    if part == "params":
        params(pe, loaded)
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
