"""The ECG breathing waves against the impedance wave (MARSH): offline, settled and live.

``--part offline``: each candidate wave over the whole recording (heart rate from our R
peaks, R-S amplitude, QRS area, QRS-morphology score, ECG baseline), band-limited to
6-36/min at 4 Hz like the breath window, against the impedance wave band-limited the same
way: correlation at lag 0, the largest |correlation| within +-3 s and its lag (> 0: the
wave leads), and the median difference of their analytic (Hilbert) phases, the wave
signed by that correlation.

``--part live`` (default): the live ECG phase (``coach analyze --ecg --causal``, in-process)
scored as ``../shared/tools/phase_eval.py`` scores it, and beside it the "settled" phase:
every analysis of the live ECG window read 30 s back, linearly between the window's own
inhale onsets and the peak between them (nothing extrapolated), scored the same way: how
far the waves themselves put the breaths from the impedance wave.

Run: .venv/bin/python bench/ecg_waves.py [--part live|offline] [DATA_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.phase_loo import marsh_args, marsh_recordings, phase_eval_module
from coach import respiration as resp
from coach.analyze import analyze_ecg
from coach.ecg import ecg_peaks
from coach.rr import rr_clean, rsa_points

ROOT = Path(__file__).resolve().parents[1]
FS = 4.0
SETTLED_S = 30.0  # s back from each analysis


def _ecg_uv(ecg_v: np.ndarray) -> np.ndarray:
    return signal.resample_poly(ecg_v, 13, 25) * 1e6  # 250 -> 130 Hz (the H10's), uV


def offline(pe, recs: list[Path]) -> None:
    band = signal.butter(2, resp.BAND_HZ, "bandpass", fs=FS, output="sos")
    low = signal.butter(2, 1.0, "lowpass", fs=130.0, output="sos")
    lags = np.arange(-12, 13)  # samples at 4 Hz: +-3 s

    def bp(x: np.ndarray) -> np.ndarray:
        return signal.sosfiltfilt(band, x - x.mean())

    for rec in recs:
        ecg_v, ip, _ = pe.load(rec)
        x = _ecg_uv(ecg_v)
        grid = np.arange(0.0, x.size / 130.0 - 1.0, 1.0 / FS)
        ref = bp(np.interp(grid, np.arange(ip.size) / 250.0, ip))
        b = ecg_peaks(x, 130.0)
        tc, rc = rr_clean(b.t_s[1:], np.diff(b.t_s) * 1000.0)
        waves = {
            "heart_rate": np.interp(grid, *rsa_points(tc, rc)),
            "r_amplitude": np.interp(grid, b.t_s, b.amp_uv),
            "qrs_area": np.interp(grid, b.t_s, b.area_uvs),
            "qrs_morphology": np.interp(grid, b.t_s, b.morph_uv),
            "baseline": np.interp(grid, np.arange(x.size) / 130.0, signal.sosfiltfilt(low, x)),
        }
        row: dict[str, object] = {"recording": rec.name}
        for name, w in waves.items():
            w = bp(w)
            r = np.array([np.corrcoef(w[: w.size - m], ref[m:])[0, 1] if m >= 0 else
                          np.corrcoef(w[-m:], ref[: ref.size + m])[0, 1] for m in lags])
            j = int(np.argmax(np.abs(r)))
            d = np.angle(signal.hilbert(np.sign(r[j]) * w) * np.conj(signal.hilbert(ref)))
            row[name] = {"r0": round(float(r[12]), 2), "r_best": round(float(r[j]), 2),
                         "lead_s": float(lags[j] / FS),
                         "phase_deg": round(float(np.degrees(np.median(np.abs(d[240:])))), 1)}
        print(json.dumps(row), flush=True)


def live(pe, recs: list[Path]) -> None:
    settled: list[tuple[float, float]] = []
    update = resp.BreathWindow.update

    def read_back(self: resp.BreathWindow, t_s: float, fresh_phase: bool = True):
        st = update(self, t_s, fresh_phase)
        if st is None or self.label != "ecg":
            return st
        tq, on, pk, ph = t_s - SETTLED_S, st.onset_s, st.exhale_s, np.nan
        k = int(np.searchsorted(on, tq, side="right")) - 1
        if 0 <= k < on.size - 1:
            o0, o1 = on[k], on[k + 1]
            p = pk[(pk > o0) & (pk < o1)]
            if p.size == 1 and 1.5 <= o1 - o0 <= 20.0:
                f = (p[0] - o0) / (o1 - o0)
                ph = (2 * np.pi * f * (tq - o0) / (p[0] - o0) if tq < p[0] else
                      2 * np.pi * (f + (1 - f) * (tq - p[0]) / (o1 - p[0])))
        settled.append((tq, ph))
        return st

    resp.BreathWindow.update = read_back  # type: ignore[method-assign]
    lv, sv = [], []
    try:
        for rec in recs:
            ecg_v, ip, marks = pe.load(rec)
            ref, _ = pe.reference_phase(ip, marks)
            settled.clear()
            a = analyze_ecg(_ecg_uv(ecg_v), 130.0, causal=True)
            s = pe.score(a.phase_t_s, a.phase, ref)
            st = np.array(settled)
            s2 = pe.score(st[:, 0], st[:, 1], ref)
            lv.append(s.pop("_abs"))
            sv.append(s2.pop("_abs"))
            print(json.dumps({"recording": rec.name, "live_median_abs_deg": s["median_abs_deg"],
                              "live_bias_deg": s["bias_deg"],
                              "settled_median_abs_deg": s2["median_abs_deg"],
                              "settled_bias_deg": s2["bias_deg"]}), flush=True)
    finally:
        resp.BreathWindow.update = update  # type: ignore[method-assign]
    deg = np.degrees
    lv_a, sv_a = np.concatenate(lv), np.concatenate(sv)
    print(json.dumps({"live_median_abs_deg": round(float(deg(np.median(lv_a))), 1),
                      "live_mean_abs_deg": round(float(deg(np.mean(lv_a))), 1),
                      "settled_median_abs_deg": round(float(deg(np.median(sv_a))), 1),
                      "settled_mean_abs_deg": round(float(deg(np.mean(sv_a))), 1)}))


def main() -> None:
    part, data = marsh_args(__doc__, ("live", "offline"))
    pe, recs = phase_eval_module(data), marsh_recordings(data)
    if part == "offline":
        offline(pe, recs)
    else:
        live(pe, recs)


if __name__ == "__main__":
    main()
