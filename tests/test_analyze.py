"""Breathing rate from a real ECG against the annotated breaths; the CLI command."""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import io, signal

from coach.analyze import analyze_ecg
from coach.commands import analyze as cmd

DATA = Path(os.environ.get("COACH_DATA", Path(__file__).parents[1] / ".." / "shared" / "data"))
REC = DATA / "recordings" / "marsh_1000"


@pytest.fixture(scope="module")
def marsh() -> tuple[np.ndarray, np.ndarray]:
    ecg = io.loadmat(REC / "ECG.mat")["ECG"].ravel() * 1e6
    marks = (np.unique(io.loadmat(REC / "IP_annot.mat")["IP_annot"].ravel()) - 1) / 250.0
    return signal.resample_poly(ecg, 13, 25), marks


def marker_rate(marks: np.ndarray, a: float, b: float) -> float:
    m = marks[(marks >= a) & (marks < b)]
    return 60.0 * (m.size - 1) / (m[-1] - m[0])


def window_rate(t: np.ndarray, bpm: np.ndarray, a: float, b: float) -> float:
    return float(np.nanmean(bpm[(t >= a) & (t < b)]))


@pytest.mark.parametrize("causal", [False, True])
def test_rate_follows_annotated_slow_and_steady_breathing(marsh, causal):
    ecg, marks = marsh
    a = analyze_ecg(ecg, 130.0, causal=causal)
    for lo, hi in [(430.0, 570.0), (660.0, 880.0)]:
        ref = marker_rate(marks, lo, hi)
        assert abs(window_rate(a.rate_t_s, a.rate_bpm, lo, hi) - ref) < 1.5, (lo, ref)


@pytest.mark.parametrize("causal", [False, True])
def test_breaths_cover_the_whole_recording(marsh, causal):
    ecg, marks = marsh
    a = analyze_ecg(ecg, 130.0, causal=causal)
    end = len(ecg) / 130.0
    # the live estimator keeps only recent breaths in memory; the analysis keeps them all
    assert a.onset_s.min() < 60.0 and a.onset_s.max() > end - 60.0
    in_range = marks[(marks > 60.0) & (marks < end - 60.0)]
    found = a.onset_s[(a.onset_s > 60.0) & (a.onset_s < end - 60.0)]
    assert abs(len(found) - len(in_range)) < 0.15 * len(in_range)


def test_faster_breathing_gives_a_higher_rate(marsh):
    ecg, marks = marsh
    a = analyze_ecg(ecg, 130.0)
    slow, fast = (430.0, 570.0), (230.0, 260.0)
    assert marker_rate(marks, *fast) > marker_rate(marks, *slow) + 5
    assert (
        window_rate(a.rate_t_s, a.rate_bpm, *fast) > window_rate(a.rate_t_s, a.rate_bpm, *slow) + 5
    )


def run_cli(capsys, **kw) -> tuple[int, str, str]:
    ns = argparse.Namespace(ecg=None, acc=None, rr=None, causal=False, json=True)
    for k, v in kw.items():
        setattr(ns, k, v)
    rc = cmd.main(ns)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_json_on_rr_file(tmp_path, capsys):
    rr = 900 + 80 * np.sin(2 * np.pi * 0.2 * np.arange(300) * 0.9)
    f = tmp_path / "rr.csv"
    np.savetxt(f, rr, fmt="%.1f")
    rc, out, _ = run_cli(capsys, rr=f)
    doc = json.loads(out)
    assert rc == 0 and set(doc) >= {"breaths", "rate", "mean_bpm"}
    assert [r["t_s"] for r in doc["rate"]] == list(range(len(doc["rate"])))
    assert all({"onset_s", "exhale_s"} <= set(b) for b in doc["breaths"])


def test_cli_ecg_csv_round_trip(tmp_path, capsys, marsh):
    ecg = marsh[0][: 130 * 120]
    f = tmp_path / "ecg.csv"
    np.savetxt(
        f,
        np.column_stack([np.arange(ecg.size) / 130, ecg]),
        delimiter=",",
        header="time_s,ecg_uv",
        comments="",
        fmt="%.6f",
    )
    rc, out, _ = run_cli(capsys, ecg=f, causal=True)
    got = json.loads(out)
    assert rc == 0 and 4 < got["mean_bpm"] < 30
    # the live phase the session state would carry, every 0.1 s; null while unknown
    phase = got["phase"]
    t = np.array([p["t_s"] for p in phase])
    assert np.allclose(np.diff(t), 0.1, atol=1e-6) and t[-1] == pytest.approx(120.0, abs=0.1)
    known = [p["phase"] for p in phase if p["phase"] is not None]
    assert all(p["phase"] is None for p in phase if p["t_s"] < 29.0)  # no rate yet
    assert len(known) > 0.5 * len(phase) and all(0.0 <= v < 2 * np.pi for v in known)
    rc, out, _ = run_cli(capsys, ecg=f, causal=False)
    assert rc == 0 and "phase" not in json.loads(out)  # offline has no live phase


@pytest.mark.parametrize(
    "content", ["a,b\n1,2\n", "time_s,ecg_uv\n0,x\n", "time_s,ecg_uv\n0,1\n0,2\n", ""]
)
def test_cli_bad_ecg_file_is_one_clear_line(tmp_path, capsys, content):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    rc, out, err = run_cli(capsys, ecg=f)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_cli_missing_rr_file(tmp_path, capsys):
    rc, _, err = run_cli(capsys, rr=tmp_path / "none.txt")
    assert rc == 2 and "none.txt" in err


def test_a_recording_is_analysed_like_the_live_session_saw_it(tmp_path, capsys):
    import subprocess
    import sys

    rec = tmp_path / "s.coach"
    live = subprocess.run(
        [sys.executable, "-m", "coach.cli", "demo", "--headless", "--scenario", "calm-anchor",
         "--duration", "240", "--speed", "max", "--json", "--record", str(rec)],
        capture_output=True, text=True, timeout=300, check=True)
    states = [json.loads(line) for line in live.stdout.splitlines()[:-1]]
    for label in ("A", "B"):
        rates = [s["partners"][label]["rate_bpm"] for s in states[120:]]
        live_rate = float(np.median([r for r in rates if r is not None]))
        ns = argparse.Namespace(ecg=None, acc=None, rr=None, recording=rec, label=label,
                                source=None, causal=False, json=True)
        assert cmd.main(ns) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["source"] == "ecg"
        late = [r["bpm"] for r in out["rate"] if r["t_s"] > 120 and r["bpm"] is not None]
        assert abs(float(np.median(late)) - live_rate) < 1.5
    ns = argparse.Namespace(ecg=None, acc=None, rr=None, recording=rec, label="T",
                            source=None, causal=False, json=True)
    assert cmd.main(ns) == 2
    assert "no ecg or acc or rr data" in capsys.readouterr().err
