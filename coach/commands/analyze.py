"""``coach analyze``: breathing from a recorded ECG, R-R or accelerometer CSV file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from coach import signalfile
from coach.analyze import Analysis, analyze_acc, analyze_ecg, analyze_rr
from coach.signalfile import MIN_DURATION_S


class InputError(Exception):
    """A file that cannot be analysed; the message is shown to the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``coach analyze`` (the CLI calls this on its subparser)."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ecg", type=Path,
                     help="CSV with header time_s,ecg_uv, or a Polar Sensor Logger ECG file: "
                          "at least 10 s at 100-5000 Hz (docs/files.md)")
    src.add_argument("--acc", type=Path,
                     help="CSV with header time_s,x_mg,y_mg,z_mg (or x_g,y_g,z_g), or a Polar "
                          "Sensor Logger ACC file: at least 10 s at 10-5000 Hz")
    src.add_argument("--rr", type=Path,
                     help="R-R intervals in ms: one a line (header rr_ms or none), coach's "
                          "time_s,rr_ms export, or a Polar Sensor Logger RR or PPI file")
    src.add_argument("--recording", type=Path,
                     help="a coach recording: analyse one partner's strap data (see --label)")
    parser.add_argument("--label", default="A", help="partner in the recording (default A)")
    parser.add_argument("--source", choices=("ecg", "acc", "rr"), default=None,
                        help="which of the recording's streams (default: ECG, else ACC, else RR)")
    parser.add_argument("--causal", action="store_true", help="replay through the live estimator")
    parser.add_argument("--json", action="store_true", help="print JSON (default: a summary)")


def run(args: argparse.Namespace) -> Analysis:
    causal = bool(args.causal)
    if args.ecg is not None:
        ecg = signalfile.read_ecg(args.ecg)
        return analyze_ecg(ecg.values, ecg.fs_hz, causal=causal)
    if args.acc is not None:
        acc = signalfile.read_acc(args.acc)
        return analyze_acc(acc.values, acc.fs_hz, causal=causal)
    if getattr(args, "recording", None) is not None:
        return _from_recording(args.recording, args.label, args.source, causal)
    return analyze_rr(signalfile.read_rr(args.rr), causal=causal)


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
    except (InputError, signalfile.SignalFileError) as exc:
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
