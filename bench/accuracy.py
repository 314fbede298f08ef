"""Breathing-rate accuracy on the MARSH recordings, side by side with NeuroKit2.

Protocol (docs/breathing.md): ECG resampled to 130 Hz in uV (Polar H10 rate);
reference = IP and nasal end-of-inspiration markers, np.unique'd, t = (index-1)/250 s;
windows of 32 s every 16 s; a window counts where the IP and nasal rates agree within
1/min, truth = their mean; estimate = mean of the 1 Hz rate inside the window; a
window without an estimate is a miss scored as an error of MISS_ERROR_BPM.

Chest motion (``--part acc``): the real chest accelerometer at paced rates
(``chest_acc_paced/``, periods 4-12 s scored), read here with numpy (headerless
``time_s,x_g,y_g,z_g,total_g``; repeated stamps averaged, resampled onto an even 200 Hz
grid, g -> mG); offline = mean of the offline 1 Hz rates, live = mean of the live rates
(none before the 30 s warm-up); a file without a rate counts as a 10/min miss.

Leave-one-recording-out (``--part loo``): the one parameter of the offline count tuned
on these recordings (LOCAL_SPAN_S, 10/20/40 s) is chosen on nine recordings and the
tenth is scored with it; ECG offline and RR-only, beside the in-sample figures.

Run: .venv/bin/python bench/accuracy.py [--part all|marsh|acc|loo] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import io, signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import itertools

from coach.analyze import Analysis, analyze_acc, analyze_ecg, analyze_rr

FS_HZ = 130.0
WIN_S, HOP_S = 32.0, 16.0
MISS_ERROR_BPM = 10.0  # breaths/min charged for a window with no estimate
AGREE_BPM = 1.0


def data_dir() -> Path:
    env = os.environ.get("COACH_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return (root / "recordings").resolve()


def load(rid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECG (uV, 130 Hz), IP and nasal end-inspiration times (s)."""
    d = data_dir() / rid
    meta = json.loads((d / "meta.json").read_text())
    ecg = io.loadmat(d / "ECG.mat")["ECG"].ravel() * 1e6
    refs = []
    for ch in meta["channels"]["reference_breath_events"]:
        idx = np.unique(io.loadmat(d / ch["file"])[ch["mat_variable"]].ravel())
        refs.append((idx * 250 / ch["index_fs_hz"] - ch["index_base"]) / 250.0)
    return signal.resample_poly(ecg, 13, 25), refs[0], refs[1]


def marker_rate(m: np.ndarray, a: float, b: float) -> float:
    m = m[(m >= a) & (m < b)]
    return 60.0 * (m.size - 1) / (m[-1] - m[0]) if m.size >= 3 else np.nan


def windows(ip: np.ndarray, nasal: np.ndarray, end_s: float) -> list[tuple[float, float]]:
    """(start, truth) of the windows where both references agree."""
    out = []
    for a in np.arange(0.0, end_s - WIN_S + 1e-9, HOP_S):
        ri, rn = marker_rate(ip, a, a + WIN_S), marker_rate(nasal, a, a + WIN_S)
        if abs(ri - rn) <= AGREE_BPM:
            out.append((float(a), (ri + rn) / 2))
    return out


def mae(t: np.ndarray, bpm: np.ndarray, wins: list[tuple[float, float]]) -> float:
    errs = []
    for a, truth in wins:
        sel = bpm[(t >= a) & (t < a + WIN_S)]
        sel = sel[np.isfinite(sel)]
        errs.append(abs(sel.mean() - truth) if sel.size else MISS_ERROR_BPM)
    return float(np.mean(errs))


def neurokit(ecg: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """NeuroKit2 R peaks and its EDR rates (1 Hz) for two methods."""
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sig, info = nk.ecg_process(ecg, sampling_rate=int(FS_HZ))
        rates = {}
        for method in ("vangent2019", "charlton2016"):
            edr = nk.ecg_rsp(sig["ECG_Rate"], sampling_rate=int(FS_HZ), method=method)
            rsp, _ = nk.rsp_process(edr, sampling_rate=int(FS_HZ))
            rates[method] = rsp["RSP_Rate"].to_numpy()[:: int(FS_HZ)]
    return np.asarray(info["ECG_R_Peaks"]) / FS_HZ, rates


def ip_phase(rid: str, t: np.ndarray) -> np.ndarray:
    """Reference phase from the IP waveform: 0 at each trough (inhale onset) between markers."""
    d = data_dir() / rid
    ip = io.loadmat(d / "IP.mat")["IP"].ravel()
    x = signal.sosfiltfilt(signal.butter(2, [0.05, 1.0], "bandpass", fs=250, output="sos"), ip)
    marks = (np.unique(io.loadmat(d / "IP_annot.mat")["IP_annot"].ravel()) - 1).astype(int)
    troughs = np.array([a + np.argmin(x[a:b]) for a, b in itertools.pairwise(marks)]) / 250
    k = np.searchsorted(troughs, t, side="right") - 1
    ok = (k >= 0) & (k < troughs.size - 1)
    ph = np.full(t.shape, np.nan)
    kk = k[ok]
    ph[ok] = 2 * np.pi * (t[ok] - troughs[kk]) / (troughs[kk + 1] - troughs[kk])
    return ph


def phase_error_deg(rid: str, a: Analysis) -> float:
    ref = ip_phase(rid, a.phase_t_s)
    ok = np.isfinite(ref) & np.isfinite(a.phase)
    if not ok.any():  # the live phase was unknown throughout (docs/breathing.md)
        return float("nan")
    d = np.angle(np.exp(1j * (a.phase[ok] - ref[ok])))
    return float(np.degrees(np.mean(np.abs(d))))


def lag_s(ref_markers: np.ndarray, t: np.ndarray, bpm: np.ndarray) -> float:
    """Shift (0-20 s) that best aligns the estimate with the marker rate (correlation)."""
    mid = (ref_markers[1:] + ref_markers[:-1]) / 2
    ref = np.interp(t, mid, 60.0 / np.diff(ref_markers))
    best, arg = -np.inf, 0
    for s in range(0, 21):
        x, y = bpm[s:], ref[: ref.size - s]
        ok = np.isfinite(x)
        c = np.corrcoef(x[ok], y[ok])[0, 1]
        if c > best:
            best, arg = c, s
    return float(arg)


def evaluate(rid: str) -> dict[str, float]:
    ecg, ip, nasal = load(rid)
    wins = windows(ip, nasal, ecg.size / FS_HZ)
    t = time.perf_counter()
    off = analyze_ecg(ecg, FS_HZ)
    t_off = time.perf_counter() - t
    t = time.perf_counter()
    cau = analyze_ecg(ecg, FS_HZ, causal=True)
    t_cau = time.perf_counter() - t
    peaks, nk_rates = neurokit(ecg)
    rr = analyze_rr(np.diff(peaks) * 1000.0)
    rr_c = analyze_rr(np.diff(peaks) * 1000.0, causal=True)
    shift = peaks[0]  # the R-R series starts at the first NeuroKit2 peak
    row = {
        "windows": len(wins),
        "ecg_offline": mae(off.rate_t_s, off.rate_bpm, wins),
        "ecg_causal": mae(cau.rate_t_s, cau.rate_bpm, wins),
        "rr_offline": mae(rr.rate_t_s + shift, rr.rate_bpm, wins),
        "rr_causal": mae(rr_c.rate_t_s + shift, rr_c.rate_bpm, wins),
        "lag_s": lag_s(ip, cau.rate_t_s, cau.rate_bpm),
        "lag_offline_s": lag_s(ip, off.rate_t_s, off.rate_bpm),
        "t_offline_s": t_off,
        "t_causal_s": t_cau,
    }
    grid = np.arange(nk_rates["vangent2019"].size, dtype=float)
    for m, r in nk_rates.items():
        row["nk_" + m] = mae(grid, r, wins)
    if (data_dir() / rid / "IP.mat").exists():
        row["phase_err_deg"] = phase_error_deg(rid, cau)
    return row


COLS = [
    "windows",
    "ecg_offline",
    "ecg_causal",
    "rr_offline",
    "rr_causal",
    "nk_vangent2019",
    "nk_charlton2016",
    "lag_s",
    "lag_offline_s",
    "phase_err_deg",
    "t_offline_s",
    "t_causal_s",
]


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| recording | " + " | ".join(COLS) + " |", "|---" * (len(COLS) + 1) + "|"]
    for rid, r in rows.items():
        cells = [f"{r[c]:.2f}" if c in r else "" for c in COLS]
        lines.append(f"| {rid} | " + " | ".join(cells) + " |")
    # NaN only where a phase was unknown throughout (the rates count misses as 10/min)
    all_ = {c: np.nanmean([r[c] for r in rows.values() if c in r]) for c in COLS}
    all_["windows"] = sum(r["windows"] for r in rows.values())
    cells = [f"{all_[c]:.2f}" for c in COLS]
    lines.append("| **mean** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


ACC_SCORED_S = (4, 6, 8, 10, 12)  # paced periods scored (15 .. 5 per min)
SPANS_S = (10.0, 20.0, 40.0)  # LOCAL_SPAN_S values tried on the dev recordings


def load_chest_acc(path: Path, fs_hz: float = 200.0) -> tuple[np.ndarray, float]:
    """A headerless ``time_s,x_g,y_g,z_g,total_g`` file as (n, 3) mG on an even grid.

    Rows sharing a time stamp are averaged; time running backwards is refused.
    """
    a = np.loadtxt(path, delimiter=",", ndmin=2)
    back = np.flatnonzero(np.diff(a[:, 0]) < 0)
    if back.size:
        raise ValueError(f"{path.name}: time runs backwards at row {back[0] + 2}")
    t, inv = np.unique(a[:, 0], return_inverse=True)
    n = np.bincount(inv)
    xyz = np.column_stack([np.bincount(inv, a[:, k]) / n for k in (1, 2, 3)])
    grid = np.arange(t[0], t[-1], 1.0 / fs_hz)
    return np.column_stack([np.interp(grid, t, xyz[:, k]) for k in range(3)]) * 1000.0, fs_hz


def acc_rows() -> dict[str, dict[str, float]]:
    """Offline and live rate errors per paced chest-motion file."""
    rows = {}
    for f in sorted((data_dir().parent / "chest_acc_paced").glob("*_accelerometer_data_*.txt")):
        period = int(f.name.split("_")[-1].removesuffix("sbreathing.txt"))
        acc, fs = load_chest_acc(f)
        truth = 60.0 / period
        row: dict[str, float] = {"period_s": period, "truth_bpm": truth,
                                 "duration_s": acc.shape[0] / fs}
        for mode, causal in (("offline", False), ("live", True)):
            r = analyze_acc(acc, fs, causal=causal).rate_bpm
            r = r[np.isfinite(r)]
            row[mode + "_bpm"] = float(r.mean()) if r.size else np.nan
            row[mode] = abs(float(r.mean()) - truth) if r.size else MISS_ERROR_BPM
        rows[f.name.split("_")[-1].removesuffix(".txt")] = row
    return rows


def acc_table(rows: dict[str, dict[str, float]]) -> str:
    cols = ["period_s", "truth_bpm", "duration_s", "offline_bpm", "offline", "live_bpm", "live"]
    lines = ["| file | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")
    scored = [r for r in rows.values() if r["period_s"] in ACC_SCORED_S]
    lines.append("| **mean, periods 4-12 s** | | | | | "
                 f"{np.mean([r['offline'] for r in scored]):.2f} | | "
                 f"{np.mean([r['live'] for r in scored]):.2f} |")
    return "\n".join(lines)


def loo_rows() -> dict[str, dict[str, float]]:
    """Offline ECG and RR-only MAE per recording for every LOCAL_SPAN_S tried, and the
    leave-one-recording-out choice."""
    per: dict[str, dict[str, float]] = {}
    for rid in sorted(p.name for p in data_dir().glob("marsh_*")):
        ecg, ip, nasal = load(rid)
        wins = windows(ip, nasal, ecg.size / FS_HZ)
        peaks, _ = neurokit(ecg)
        rr = np.diff(peaks) * 1000.0
        row = {}
        for span in SPANS_S:
            off = analyze_ecg(ecg, FS_HZ, span_s=span)
            row[f"ecg_{span:g}"] = mae(off.rate_t_s, off.rate_bpm, wins)
            r = analyze_rr(rr, span_s=span)
            row[f"rr_{span:g}"] = mae(r.rate_t_s + peaks[0], r.rate_bpm, wins)
        per[rid] = row
    for kind in ("ecg", "rr"):
        for rid in per:
            rest = [r for r in per if r != rid]
            best = min(SPANS_S, key=lambda s: np.mean([per[r][f"{kind}_{s:g}"] for r in rest]))
            per[rid][f"{kind}_loo"] = per[rid][f"{kind}_{best:g}"]
            per[rid][f"{kind}_loo_span"] = best
    return per


def loo_table(per: dict[str, dict[str, float]]) -> str:
    cols = [c for c in next(iter(per.values()))]
    lines = ["| recording | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for rid, r in per.items():
        lines.append(f"| {rid} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")
    lines.append("| **mean** | " + " | ".join(
        f"{np.mean([r[c] for r in per.values()]):.2f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    ap.add_argument("--part", choices=("all", "marsh", "acc", "loo"), default="all")
    args = ap.parse_args()
    head = (
        f"MAE in breaths/min over {WIN_S:.0f} s windows every {HOP_S:.0f} s; "
        f"misses count {MISS_ERROR_BPM:.0f}/min. Machine: {platform.platform()}, "
        f"{platform.machine()}, Python {platform.python_version()}.\n\n"
    )
    md = []
    if args.part in ("all", "marsh"):
        rids = sorted(p.name for p in data_dir().glob("marsh_*"))
        md.append(table({rid: evaluate(rid) for rid in rids}))
    if args.part in ("all", "loo"):
        md.append("Leave-one-recording-out (LOCAL_SPAN_S chosen on the other nine):\n\n"
                  + loo_table(loo_rows()))
    if args.part in ("all", "acc"):
        md.append("Real chest accelerometer at paced rates (chest_acc_paced), |error| "
                  "in breaths/min:\n\n" + acc_table(acc_rows()))
    text = head + "\n\n".join(md)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
