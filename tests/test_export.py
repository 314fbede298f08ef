"""Export: BIDS physio + events and CSV, checked against the recorded samples."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coach.export import export_bids, export_csv, regular_grid
from coach.recording import Recorder, RecordingReader
from coach.types import AccChunk, Command, EcgChunk, HeartRate, Marker, PacerState


@pytest.fixture
def recording(tmp_path: Path, make_state: Any) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "s.coach"
    clock = [0.0]
    with Recorder(path, labels=("A", "B"), now=lambda: clock[0], t_origin_s=10.0) as rec:
        for k in range(40):  # 10 s; B is gone from 4 s to 6 s
            t = 10.0 + k * 0.25
            for label in "AB":
                if label == "B" and 4.0 <= k * 0.25 < 6.0:
                    continue
                rec.write(EcgChunk(t + 0.001, label, 130.0, rng.integers(-900, 900, 32)
                                   if k % 2 else rng.integers(-900, 900, 33)))
                rec.write(AccChunk(t, label, 200.0, rng.integers(-999, 999, (50, 3))))
            if k % 4 == 3:
                rec.write(HeartRate(t, "A", 60.0, (1000.0,), (t,)))
            pacer = PacerState(10.0, 0.0, 6.0)
            rec.write_state(make_state(t, pacer=pacer))
        clock[0] = 13.0
        rec.write(Command("marker", "rupture", "raised voices"))  # as Session does:
        rec.write(Marker(13.0, "rupture", "raised voices"))  # the command, then its marker
    return path


def test_regular_grid_absorbs_jitter_and_marks_gaps() -> None:
    a = np.arange(10.0)
    t0, fs, out = regular_grid([(0.0, 10.0, a), (1.004, 10.0, a), (3.0, 10.0, a)])
    assert (t0, fs) == (0.0, 10.0) and out.shape == (40, 1)
    np.testing.assert_array_equal(out[:20, 0], np.r_[a, a])
    assert np.isnan(out[20:30]).all()


def test_bids_files_hold_every_sample(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "bids"
    with RecordingReader(recording) as reader:
        files = export_bids(reader, out, subject_prefix="c7")
        ecg_b = np.concatenate([e.item.ecg_uv for e in reader.entries(("ecg",), "B")])
    assert (out / "dataset_description.json").is_file() and len(files) == 11
    beh = out / "sub-c7B" / "beh"
    side = json.loads((beh / "sub-c7B_task-coregulation_recording-ecg_physio.json").read_text())
    assert side["SamplingFrequency"] == 130.0 and side["Columns"] == ["cardiac"]
    assert side["cardiac"]["Units"] == "uV" and abs(side["StartTime"] - 0.001) < 1e-9
    with gzip.open(beh / "sub-c7B_task-coregulation_recording-ecg_physio.tsv.gz", "rt") as f:
        lines = f.read().splitlines()
    values = np.array([float(x) for x in lines if x != "n/a"])
    np.testing.assert_array_equal(values, ecg_b)
    assert 250 <= lines.count("n/a") <= 270  # the 2 s gap at 130 Hz
    acc = json.loads((beh / "sub-c7B_task-coregulation_recording-acc_physio.json").read_text())
    assert acc["Columns"] == ["accel_x", "accel_y", "accel_z"] and acc["SamplingFrequency"] == 200


def test_bids_events_hold_beats_markers_and_pacer(recording: Path, tmp_path: Path) -> None:
    with RecordingReader(recording) as reader:
        export_bids(reader, tmp_path, subject_prefix="")
    path = tmp_path / "sub-A" / "beh" / "sub-A_task-coregulation_events.tsv"
    with path.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    kinds = [r["trial_type"] for r in rows]
    assert kinds.count("beat") == 10 and kinds.count("marker") == 1
    assert "command_marker" not in kinds  # the marker stands for its command
    onsets = [float(r["onset"]) for r in rows if r["trial_type"] == "pacer_inhale"]
    assert np.allclose(np.diff(onsets), 10.0)  # the orb at 6/min: one inhale every 10 s
    assert [float(r["onset"]) for r in rows] == sorted(float(r["onset"]) for r in rows)
    marker = next(r for r in rows if r["trial_type"] == "marker")
    assert float(marker["onset"]) == 3.0 and marker["value"] == "rupture"


def test_csv_export(recording: Path, tmp_path: Path) -> None:
    with RecordingReader(recording) as reader:
        export_csv(reader, tmp_path)
    ecg = np.loadtxt(tmp_path / "A_ecg.csv", delimiter=",", skiprows=1)
    assert ecg.shape == (40 * 32 + 20, 2) and ecg[0, 0] == pytest.approx(0.001)
    assert (tmp_path / "A_acc.csv").read_text().startswith("time_s,x_mg,y_mg,z_mg\n")
    with (tmp_path / "states.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and float(rows[0]["A_rate_bpm"]) == 7.0
    assert "rupture" in (tmp_path / "events.csv").read_text()
