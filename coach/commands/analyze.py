"""``coach analyze``: breathing from a recorded ECG, R-R or accelerometer CSV file."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from coach.analyze import Analysis, analyze_acc, analyze_ecg, analyze_rr

MAX_GAP_FRACTION = 0.05  # tolerated spread of sample intervals around their median
MIN_DURATION_S = 10.0  # shorter than two slow breaths: nothing to analyse
MAX_ABS_TIME_S = 1e9  # about 30 years: beyond it time_s is not a recording's clock
MAX_ABS_VALUE = 1e7  # 10 V in uV, 10,000 g in mg: beyond it a sample is not a signal
MAX_RR_MS = 60_000.0  # a minute between beats is already no heart rhythm
# sampling rates the filters can be designed for (ECG cleaning passes up to 40 Hz)
RATE_RANGE_HZ = {"ecg_uv": (100.0, 5000.0), "x_mg": (10.0, 5000.0)}


class InputError(Exception):
    """A file that cannot be analysed; the message is shown to the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``coach analyze`` (the CLI calls this on its subparser)."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ecg", type=Path,
                     help="CSV with header time_s,ecg_uv: at least 10 s at 100-5000 Hz")
    src.add_argument("--acc", type=Path,
                     help="CSV with header time_s,x_mg,y_mg,z_mg: at least 10 s at 10-5000 Hz")
    src.add_argument("--rr", type=Path, help="text file, one R-R interval in ms (0-60000) per line")
    src.add_argument("--recording", type=Path,
                     help="a coach recording: analyse one partner's strap data (see --label)")
    parser.add_argument("--label", default="A", help="partner in the recording (default A)")
    parser.add_argument("--source", choices=("ecg", "acc", "rr"), default=None,
                        help="which of the recording's streams (default: ECG, else ACC, else RR)")
    parser.add_argument("--causal", action="store_true", help="replay through the live estimator")
    parser.add_argument("--json", action="store_true", help="print JSON (default: a summary)")


def _read_table(path: Path, columns: list[str]) -> np.ndarray:
    try:
        with path.open() as f:
            header = [h.strip() for h in f.readline().strip().split(",")]
            if header != columns:
                raise InputError(  # repr: control characters would break the line
                    f"{path}: header must be {','.join(columns)}, got {','.join(header)[:80]!r}"
                )
            with warnings.catch_warnings():  # no data rows: the shape check says so
                warnings.simplefilter("ignore", UserWarning)
                data = np.loadtxt(f, delimiter=",", ndmin=2)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # UnicodeDecodeError too
        raise InputError(f"{path}: not numeric CSV ({_one_line(exc)})") from exc
    if data.shape[0] < 2 or data.shape[1] != len(columns) or not np.all(np.isfinite(data)):
        raise InputError(f"{path}: need at least 2 finite rows of {len(columns)} columns")
    if np.any(np.abs(data[:, 0]) > MAX_ABS_TIME_S) or np.any(np.abs(data[:, 1:]) > MAX_ABS_VALUE):
        raise InputError(f"{path}: values beyond {MAX_ABS_TIME_S:g} s or {MAX_ABS_VALUE:g} "
                         f"{columns[1].rsplit('_', 1)[1]} are not a recording")
    return data


def _rate_of(path: Path, t: np.ndarray, column: str) -> float:
    dt = np.diff(t)
    med = float(np.median(dt))
    if med <= 0 or np.any(dt <= 0):
        raise InputError(f"{path}: time_s must increase")
    if np.max(np.abs(dt - med)) > MAX_GAP_FRACTION * med + 1e-6:
        raise InputError(f"{path}: time_s is not evenly sampled (gaps or jitter)")
    lo, hi = RATE_RANGE_HZ[column]
    if not lo <= 1.0 / med <= hi:
        raise InputError(f"{path}: sampled at {1.0 / med:.4g} Hz, need {lo:g} to {hi:g} Hz")
    if t[-1] - t[0] < MIN_DURATION_S:
        raise InputError(f"{path}: {t[-1] - t[0]:.3g} s of data, need at least "
                         f"{MIN_DURATION_S:g} s")
    return 1.0 / med


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _read_rr(path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():  # an empty file: the size check says so
            warnings.simplefilter("ignore", UserWarning)
            rr = np.loadtxt(path, ndmin=1, dtype=np.float64)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise InputError(f"{path}: expected one number (ms) per line ({_one_line(exc)})") from exc
    if rr.ndim != 1 or rr.size < 3 or not np.all((rr > 0) & (rr <= MAX_RR_MS)):
        raise InputError(f"{path}: expected at least 3 R-R intervals in ms, each in "
                         f"(0, {MAX_RR_MS:g}], one per line")
    return rr


def run(args: argparse.Namespace) -> Analysis:
    causal = bool(args.causal)
    if args.ecg is not None:
        d = _read_table(args.ecg, ["time_s", "ecg_uv"])
        return analyze_ecg(d[:, 1], _rate_of(args.ecg, d[:, 0], "ecg_uv"), causal=causal)
    if args.acc is not None:
        d = _read_table(args.acc, ["time_s", "x_mg", "y_mg", "z_mg"])
        return analyze_acc(d[:, 1:], _rate_of(args.acc, d[:, 0], "x_mg"), causal=causal)
    if getattr(args, "recording", None) is not None:
        return _from_recording(args.recording, args.label, args.source, causal)
    return analyze_rr(_read_rr(args.rr), causal=causal)


def _from_recording(path: Path, label: str, source: str | None, causal: bool) -> Analysis:
    """One partner's stream from a recording; times from the session start.

    Gaps (a strap out of reach) are filled with the stream's median so the timeline stays
    true; breaths found inside a gap are dropped.
    """
    from dataclasses import replace

    from coach.recording import RecordingError, RecordingReader

    try:
        with RecordingReader(path) as reader:
            origin = reader.t_origin_s
            streams = {k: list(reader.entries((k,), label)) for k in ("ecg", "acc", "hr")}
    except RecordingError as exc:
        raise InputError(str(exc)) from exc
    order = [source] if source else ["ecg", "acc", "rr"]
    for kind in order:
        entries = streams["hr" if kind == "rr" else kind]
        if kind == "rr":
            rr = np.array([r for e in entries for r in e.item.rr_ms])
            if rr.size >= 3:
                beats = [b for e in entries for b in e.item.beat_t_s]
                result = analyze_rr(rr, causal=causal)
                return _shifted(result, beats[0] - rr[0] / 1000.0 - origin, replace)
        elif entries:
            values, t0, fs, gaps = _join_chunks([e.item for e in entries], kind)
            if (len(values) - 1) / fs >= MIN_DURATION_S:
                analyse = analyze_ecg if kind == "ecg" else analyze_acc
                result = _shifted(analyse(values, fs, causal=causal), t0 - origin, replace)
                return _drop_in_gaps(result, [(a - origin, b - origin) for a, b in gaps])
    raise InputError(f"{path}: partner {label} has no {' or '.join(order)} data to analyse")


def _join_chunks(chunks: list, kind: str) -> tuple[np.ndarray, float, float, list]:
    fs = chunks[0].fs_hz
    t0 = chunks[0].t_s
    n = round((chunks[-1].end_s - t0) * fs)
    width = () if kind == "ecg" else (3,)
    values = np.full((n, *width), np.nan)
    gaps, last_end = [], t0
    for c in chunks:
        data = c.ecg_uv if kind == "ecg" else c.acc_mg
        i = round((c.t_s - t0) * fs)
        values[i : i + len(data)] = data[: max(0, n - i)]
        if c.t_s - last_end > 2.0 / fs:
            gaps.append((last_end, c.t_s))
        last_end = max(last_end, c.end_s)
    fill = np.nanmedian(values, axis=0)
    values = np.where(np.isnan(values), fill, values)
    return values, t0, fs, gaps


def _shifted(a: Analysis, offset: float, replace) -> Analysis:  # type: ignore[no-untyped-def]
    return replace(a, onset_s=a.onset_s + offset, exhale_s=a.exhale_s + offset,
                   rate_t_s=a.rate_t_s + offset, phase_t_s=a.phase_t_s + offset)


def _drop_in_gaps(a: Analysis, gaps: list[tuple[float, float]]) -> Analysis:
    from dataclasses import replace

    def outside(t: np.ndarray) -> np.ndarray:
        keep = np.ones(len(t), dtype=bool)
        for lo, hi in gaps:
            keep &= ~((t >= lo) & (t <= hi + 10.0))  # the filters settle after a gap
        return keep

    rate = np.where(outside(a.rate_t_s), a.rate_bpm, np.nan)
    return replace(a, onset_s=a.onset_s[outside(a.onset_s)],
                   exhale_s=a.exhale_s[outside(a.exhale_s)], rate_bpm=rate)


def main(args: argparse.Namespace) -> int:
    try:
        result = run(args)
    except InputError as exc:
        print(f"coach analyze: {exc}", file=sys.stderr)
        return 2
    out = result.to_json()
    if args.json:
        print(json.dumps(out))
    else:
        n = len(out["breaths"])
        print(f"{n} breaths, mean {out['mean_bpm']} breaths/min (source {out['source']})")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="coach analyze")
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
