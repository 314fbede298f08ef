"""Export a recording for research tools: BIDS physio (TSV.gz + JSON) and plain CSV.

BIDS: per participant label, one ``*_recording-<ecg|acc>_physio.tsv.gz`` per regularly
sampled stream (no header; columns, rate, start time and units in the JSON sidecar),
and one ``*_events.tsv`` with beats (RR), markers, commands and the pacer's breaths.
Time 0 is the session start; gaps (a strap away) are ``n/a`` rows, so row ``i`` is
always at ``StartTime + i / SamplingFrequency``. No names: participants are
``sub-<session><label>`` (a hash of the session's start, letters and digits only as
BIDS asks: ``sub-s3f9a2c1dA``), so one folder holds many couples; ``subject_prefix``
replaces the session part. An export refuses to replace a file unless ``force``; the
files are private to the user (0600, new folders 0700). Text fields in TSV are escaped
as BIDS asks: a value with a tab is double-quoted; a line break is written ``\n`` so
each event stays one line.

References
----------
BIDS specification, "Physiological and other continuous recordings" and "Task events",
https://bids-specification.readthedocs.io/
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from coach.recording import RecordingError, RecordingReader, private_umask
from coach.types import TWO_PI

BIDS_VERSION = "1.9.0"
TASK = "coregulation"
STREAMS: dict[str, dict[str, Any]] = {
    "ecg": {"columns": ["cardiac"], "units": ["uV"],
            "descriptions": ["single-lead chest ECG"]},
    "acc": {"columns": ["accel_x", "accel_y", "accel_z"], "units": ["mG", "mG", "mG"],
            "descriptions": [f"chest accelerometer, {a} axis of the strap" for a in "xyz"]},
}
SNAP_SAMPLES = 2  # a chunk starting within this many samples of the expected one is contiguous


def regular_grid(chunks: list[tuple[float, float, np.ndarray]]) -> tuple[float, float, np.ndarray]:
    """Place chunks (t_s, fs_hz, samples) on one regular grid; gaps become NaN.

    Returns (start time, rate, samples of shape (n, columns)). Host-time jitter of a
    chunk start under ``SNAP_SAMPLES`` samples is absorbed, so contiguous data stays
    contiguous.
    """
    t0, fs = chunks[0][0], chunks[0][1]
    placed: list[tuple[int, np.ndarray]] = []
    expected = 0
    for t_s, _, data in chunks:
        data = data.reshape(len(data), -1)
        index = round((t_s - t0) * fs)
        if abs(index - expected) <= SNAP_SAMPLES:
            index = expected
        index = max(index, expected)  # never write back over samples already placed
        placed.append((index, data))
        expected = index + len(data)
    out = np.full((expected, placed[0][1].shape[1]), np.nan)
    for index, data in placed:
        out[index:index + len(data)] = data
    return t0, fs, out


def _format(values: np.ndarray) -> str:
    buf = io.StringIO()
    np.savetxt(buf, values, fmt="%.7g", delimiter="\t")
    return buf.getvalue().replace("nan", "n/a")


def _stem(sub: str, ses: str | None) -> str:
    return f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{TASK}"


def session_id(reader: RecordingReader) -> str:
    """The recording's session as a BIDS label, letters and digits only: ``s`` and eight
    hex digits of a hash of its start, so couples differ and no date is exported."""
    who = json.dumps([reader.meta.get("started_utc"), reader.meta.get("t_origin_s"),
                      list(reader.labels)])
    return "s" + hashlib.sha256(who.encode()).hexdigest()[:8]


def refuse_existing(paths: list[Path], force: bool) -> None:
    """Raise RecordingError naming the first of ``paths`` that exists (unless ``force``)."""
    if force:
        return
    for path in paths:
        if path.exists():
            raise RecordingError(f"{path} already exists; export elsewhere or add --force")


def _bids_paths(reader: RecordingReader, out_dir: Path, prefix: str,
                session: str | None) -> dict[str, tuple[Path, Path]]:
    """Per label: its folder and the stem of its files."""
    out = {}
    for label in reader.labels:
        sub = f"{prefix}{label}"
        folder = out_dir / f"sub-{sub}" / (f"ses-{session}" if session else "") / "beh"
        out[label] = (folder, folder / _stem(sub, session))
    return out


def export_bids(reader: RecordingReader, out_dir: Path, *, subject_prefix: str | None = None,
                session: str | None = None, force: bool = False) -> list[Path]:
    """Write the recording as BIDS physio and events files under ``out_dir``.

    ``subject_prefix`` None: the recording's :func:`session_id`. Raises RecordingError
    before writing anything if a file it would write exists (unless ``force``).
    """
    prefix = session_id(reader) if subject_prefix is None else subject_prefix
    paths = _bids_paths(reader, out_dir, prefix, session)
    planned = [stem.with_name(stem.name + suffix) for _, stem in paths.values()
               for suffix in ("_recording-ecg_physio.tsv.gz", "_recording-ecg_physio.json",
                              "_recording-acc_physio.tsv.gz", "_recording-acc_physio.json",
                              "_events.tsv", "_events.json")]
    refuse_existing(planned, force)
    with private_umask():
        out_dir.mkdir(parents=True, exist_ok=True)
        written = _dataset_description(out_dir)
        shared = list(_shared_events(reader))
        for label, (folder, stem) in paths.items():
            folder.mkdir(parents=True, exist_ok=True)
            for kind in STREAMS:
                written += _physio(reader, label, kind,
                                   stem.with_name(f"{stem.name}_recording-{kind}"))
            rows = sorted(list(_beat_events(reader, label)) + shared, key=lambda r: r[0])
            written.append(_events_tsv(stem.with_name(f"{stem.name}_events.tsv"), rows))
    return written


def _dataset_description(out_dir: Path) -> list[Path]:
    """The dataset's description, written once: the couples after the first share it."""
    path = out_dir / "dataset_description.json"
    if path.exists():
        return []
    desc = {"Name": "coach breathing-coach sessions", "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw", "GeneratedBy": [{"Name": "coach"}]}
    path.write_text(json.dumps(desc, indent=2) + "\n")
    return [path]


def _physio(reader: RecordingReader, label: str, kind: str, base: Path) -> list[Path]:
    chunks = [(e.t_s, e.item.fs_hz, e.item.ecg_uv if kind == "ecg" else e.item.acc_mg)
              for e in reader.entries((kind,), label) if len(_samples(e.item))]
    if not chunks:
        return []
    fs, end = chunks[0][1], chunks[0][0] + reader.duration_s + 60.0
    late = [c for c in chunks if c[0] > end]
    if late:  # the grid spans the session, not a time someone typed into a row
        reader.warn(f"{label} {kind}: {len(late)} chunks after the session's end left out")
        chunks = [c for c in chunks if c[0] <= end]
    other = [c for c in chunks if c[1] != fs]
    if other:  # one grid, one rate: chunks at another rate cannot go on it
        reader.warn(f"{label} {kind}: {len(other)} chunks at a rate other than {fs:g} Hz "
                    "left out of the physio file")
        chunks = [c for c in chunks if c[1] == fs]
    t0, fs, values = regular_grid(chunks)
    spec = STREAMS[kind]
    tsv = base.with_name(base.name + "_physio.tsv.gz")
    with gzip.open(tsv, "wt", encoding="utf-8") as f:
        f.write(_format(values))
    sidecar: dict[str, Any] = {"SamplingFrequency": fs,
                               "StartTime": round(t0 - reader.t_origin_s, 6),
                               "Columns": spec["columns"]}
    for col, unit, text in zip(spec["columns"], spec["units"], spec["descriptions"],
                               strict=True):
        sidecar[col] = {"Units": unit, "Description": text}
    sidecar["Units"] = dict(zip(spec["columns"], spec["units"], strict=True))
    js = base.with_name(base.name + "_physio.json")
    js.write_text(json.dumps(sidecar, indent=2) + "\n")
    return [tsv, js]


def _samples(item: Any) -> np.ndarray:
    return item.ecg_uv if hasattr(item, "ecg_uv") else item.acc_mg


EventRow = tuple[float, float, str, str, str]  # onset, duration, trial_type, value, note


def _beat_events(reader: RecordingReader, label: str) -> Iterator[EventRow]:
    origin = reader.t_origin_s
    for entry in reader.entries(("hr",), label):
        for t, rr in zip(entry.item.beat_t_s, entry.item.rr_ms, strict=True):
            yield (t - origin, 0.0, "beat", f"{rr:.3f}", "rr_ms")


def _shared_events(reader: RecordingReader) -> Iterator[EventRow]:
    origin = reader.t_origin_s
    for entry in reader.entries(("marker", "command")):
        item = entry.item
        if entry.kind == "marker":
            yield (entry.t_s - origin, 0.0, "marker", item.kind, item.note)
        elif item.kind != "marker":  # a marker command is represented by its marker
            yield (entry.rx_s - origin, 0.0, f"command_{item.kind}",
                   json.dumps(item.value), item.note)
    yield from pacer_breaths(reader)


def pacer_breaths(reader: RecordingReader) -> Iterator[EventRow]:
    """One event per orb inhale: onset, inhale duration, and the orb's rate.

    Each state's trajectory (phase at t0, rate) holds until the next state, so the
    inhale onsets are where that trajectory's phase wraps past 2 pi.
    """
    origin = reader.t_origin_s
    prev: dict[str, Any] | None = None
    for state in reader.states():
        if prev is not None and prev.get("pacer"):
            yield from _wraps(prev["pacer"], prev["t_s"], state["t_s"], origin)
        prev = state


def _wraps(p: dict[str, Any], t_from: float, t_to: float, origin: float) -> Iterator[EventRow]:
    per_s = p["rate_bpm"] / 60.0
    cycles_at = (p["phase0"] / TWO_PI) + per_s * (t_from - p["t0_s"])
    k = math.floor(cycles_at) + 1
    while True:
        t = p["t0_s"] + (k - p["phase0"] / TWO_PI) / per_s
        if t >= t_to:
            return
        if t >= t_from:
            inhale = p["ie_ratio"] / (1.0 + p["ie_ratio"]) / per_s
            yield (t - origin, inhale, "pacer_inhale", f"{p['rate_bpm']:.4f}", p["mode"])
        k += 1


def tsv_field(value: str) -> str:
    """One TSV value as BIDS asks: ``n/a`` when empty, double-quoted when it holds a tab
    or starts with a quote (quotes inside doubled), line breaks written ``\\n``."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    if not value:
        return "n/a"
    if "\t" in value or value.startswith('"'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _events_tsv(path: Path, rows: list[EventRow]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write("onset\tduration\ttrial_type\tvalue\tnote\n")
        for onset, duration, kind, value, note in rows:
            fields = (f"{onset:.4f}", f"{duration:.4f}", kind, value, note)
            f.write("\t".join(tsv_field(str(x)) for x in fields) + "\n")
    sidecar = {"onset": {"Units": "s", "Description": "seconds from the session start"},
               "duration": {"Units": "s"},
               "trial_type": {"Levels": {
                   "beat": "a heart beat; value = RR interval ending at it (ms)",
                   "marker": "therapist marker; value = kind, note = text",
                   "pacer_inhale": "orb inhale onset; duration = inhale; value = orb rate "
                                   "(breaths/min), note = pacer mode"}},
               "value": {"Description": "see trial_type"}}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------- CSV


def export_csv(reader: RecordingReader, out_dir: Path, *, force: bool = False) -> list[Path]:
    """Plain CSV: per label ECG, ACC and RR with sample times; states; events.

    Raises RecordingError before writing anything if one of its files exists (unless
    ``force``); files 0600, a new folder 0700.
    """
    planned = [out_dir / f"{label}_{kind}.csv" for label in reader.labels
               for kind in ("ecg", "acc", "rr")] + [out_dir / "states.csv",
                                                    out_dir / "events.csv"]
    refuse_existing(planned, force)
    with private_umask():
        out_dir.mkdir(parents=True, exist_ok=True)
        return _export_csv(reader, out_dir)


def _export_csv(reader: RecordingReader, out_dir: Path) -> list[Path]:
    origin, written = reader.t_origin_s, []
    for label in reader.labels:
        for kind, header in (("ecg", "time_s,ecg_uv"), ("acc", "time_s,x_mg,y_mg,z_mg")):
            path = out_dir / f"{label}_{kind}.csv"
            with path.open("w", encoding="utf-8") as f:
                f.write(header + "\n")
                for e in reader.entries((kind,), label):
                    data = _samples(e.item).reshape(len(_samples(e.item)), -1)
                    t = e.t_s - origin + np.arange(len(data)) / e.item.fs_hz
                    np.savetxt(f, np.column_stack([t, data]), fmt="%.6f" + ",%.7g" * data.shape[1])
            written.append(path)
        path = out_dir / f"{label}_rr.csv"
        with path.open("w", encoding="utf-8") as f:
            f.write("time_s,rr_ms\n")
            for onset, _, _, value, _ in _beat_events(reader, label):
                f.write(f"{onset:.6f},{value}\n")
        written.append(path)
    written.append(_states_csv(reader, out_dir / "states.csv"))
    rows = sorted(_shared_events(reader), key=lambda r: r[0])
    path = out_dir / "events.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["onset_s", "duration_s", "type", "value", "note"])
        w.writerows((f"{a:.4f}", f"{b:.4f}", c, d, e) for a, b, c, d, e in rows)
    written.append(path)
    return written


def flatten_state(state: dict[str, Any], origin: float) -> dict[str, Any]:
    """One CSV row of a state: partner fields as ``A_rate_bpm``, pacer as ``pacer_*``."""
    row: dict[str, Any] = {"t_s": round(state["t_s"] - origin, 3), "anchor": state.get("anchor")}
    for label, fields in state.get("partners", {}).items():
        row.update({f"{label}_{k}": v for k, v in fields.items()})
    pacer = state.get("pacer") or {}
    for key in ("rate_bpm", "phase", "ie_ratio", "holding", "mode"):
        row[f"pacer_{key}"] = pacer.get(key)
    for key, value in state.items():
        if key not in ("t_s", "partners", "anchor", "pacer", "markers"):
            row.update(_flat(key, value))
    return row


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}_{k}", v))
        return out
    return {prefix: value}


def _states_csv(reader: RecordingReader, path: Path) -> Path:
    rows = [flatten_state(s, reader.t_origin_s) for s in reader.states()]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns) or ["t_s"], restval="")
        w.writeheader()
        w.writerows(rows)
    return path
