"""``coach analyze``: breathing from a recorded ECG, R-R or accelerometer CSV file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from coach.analyze import Analysis, analyze_acc, analyze_ecg, analyze_rr

MAX_GAP_FRACTION = 0.05  # tolerated spread of sample intervals around their median


class InputError(Exception):
    """A file that cannot be analysed; the message is shown to the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``coach analyze`` (the CLI calls this on its subparser)."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ecg", type=Path, help="CSV with header time_s,ecg_uv")
    src.add_argument("--acc", type=Path, help="CSV with header time_s,x_mg,y_mg,z_mg")
    src.add_argument("--rr", type=Path, help="text file, one R-R interval in ms per line")
    parser.add_argument("--causal", action="store_true", help="replay through the live estimator")
    parser.add_argument("--json", action="store_true", help="print JSON (default: a summary)")


def _read_table(path: Path, columns: list[str]) -> np.ndarray:
    try:
        with path.open() as f:
            header = [h.strip() for h in f.readline().strip().split(",")]
            if header != columns:
                raise InputError(
                    f"{path}: header must be {','.join(columns)}, got {','.join(header)}"
                )
            data = np.loadtxt(f, delimiter=",", ndmin=2)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise InputError(f"{path}: not numeric CSV ({exc})") from exc
    if data.shape[0] < 2 or data.shape[1] != len(columns) or not np.all(np.isfinite(data)):
        raise InputError(f"{path}: need at least 2 finite rows of {len(columns)} columns")
    return data


def _rate_of(path: Path, t: np.ndarray) -> float:
    dt = np.diff(t)
    med = float(np.median(dt))
    if med <= 0 or np.any(dt <= 0):
        raise InputError(f"{path}: time_s must increase")
    if np.max(np.abs(dt - med)) > MAX_GAP_FRACTION * med + 1e-6:
        raise InputError(f"{path}: time_s is not evenly sampled (gaps or jitter)")
    return 1.0 / med


def _read_rr(path: Path) -> np.ndarray:
    try:
        rr = np.loadtxt(path, ndmin=1, dtype=np.float64)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise InputError(f"{path}: expected one number (ms) per line ({exc})") from exc
    if rr.ndim != 1 or rr.size < 3 or not np.all(np.isfinite(rr)) or np.any(rr <= 0):
        raise InputError(f"{path}: expected at least 3 positive R-R intervals in ms, one per line")
    return rr


def run(args: argparse.Namespace) -> Analysis:
    causal = bool(args.causal)
    if args.ecg is not None:
        d = _read_table(args.ecg, ["time_s", "ecg_uv"])
        return analyze_ecg(d[:, 1], _rate_of(args.ecg, d[:, 0]), causal=causal)
    if args.acc is not None:
        d = _read_table(args.acc, ["time_s", "x_mg", "y_mg", "z_mg"])
        return analyze_acc(d[:, 1:], _rate_of(args.acc, d[:, 0]), causal=causal)
    return analyze_rr(_read_rr(args.rr), causal=causal)


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
