"""The files ``coach analyze`` reads (coach/signalfile.py): real loggers' quirks, Polar Sensor
Logger exports, coach's own export, refusals in one line, bounded memory.

The Polar Sensor Logger samples are written here in the app's documented format: semicolon
separated, a ``Phone timestamp`` column, ``sensor timestamp [ns]`` counting from 2000-01-01,
headers as the app writes them (see the module docstring of coach/signalfile.py for where
they were looked up).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import io, signal

from coach import signalfile
from coach.analyze import analyze_acc, analyze_rr
from coach.commands import analyze as cmd

DATA = Path(os.environ.get("COACH_DATA", Path(__file__).parents[1] / ".." / "shared" / "data"))
PACED = DATA / "chest_acc_paced"
POLAR_EPOCH = datetime(2000, 1, 1)
PHONE_T0 = datetime(2026, 3, 14, 9, 26, 53)
ACC_HEADER = "Phone timestamp;sensor timestamp [ns];X [mg];Y [mg];Z [mg]"
ECG_HEADER = "Phone timestamp;sensor timestamp [ns];timestamp [ms];ecg [uV]"
RR_HEADER = "Phone timestamp;RR-interval [ms]"
PPI_HEADER = ("Phone timestamp;PP-interval [ms];error estimate [ms];blocker;contact;contact;"
              "hr [bpm]")


def analyze(capsys, kind: str, path: Path, causal: bool = False) -> tuple[int, dict, str]:
    ns = argparse.Namespace(ecg=None, acc=None, rr=None, causal=causal, json=True)
    setattr(ns, kind, path)
    rc = cmd.main(ns)
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if rc == 0 else {}), err


def phone(t_s: float) -> str:
    return (PHONE_T0 + timedelta(seconds=t_s)).isoformat(timespec="milliseconds")


def sensor_ns(t_s: np.ndarray) -> np.ndarray:
    start = round((PHONE_T0 - POLAR_EPOCH).total_seconds() * 1e9)
    return start + np.round(t_s * 1e9).astype(np.int64)


# ----------------------------------------------------------------------------- real logger


def scorer_clean(raw: np.ndarray, fs_hz: float = 200.0) -> np.ndarray:
    """How shared/tools/acc_eval.py cleans these files: repeats averaged, even grid, mG."""
    t, inv = np.unique(raw[:, 0], return_inverse=True)
    xyz = [np.bincount(inv, raw[:, k]) / np.bincount(inv) for k in (1, 2, 3)]
    grid = np.arange(t[0], t[-1], 1.0 / fs_hz)
    return np.column_stack([np.interp(grid, t, c) * 1000.0 for c in xyz])


@pytest.mark.parametrize("period_s", [4, 8])
@pytest.mark.parametrize("units", ["g", "mg"])
def test_real_chest_logger_file_with_only_a_header(tmp_path, capsys, period_s, units):
    """chest_acc_paced rows as logged (repeated and jittered stamps), a header line added."""
    src = PACED / f"pos1_accelerometer_data_{period_s}sbreathing.txt"
    raw = np.loadtxt(src, delimiter=",")
    f = tmp_path / "acc.csv"
    if units == "g":  # the file itself, five columns, with the header naming them
        f.write_text("time_s,x_g,y_g,z_g,total_g\n" + src.read_text())
    else:
        rows = (f"{r[0]:.3f},{r[1] * 1e3:.1f},{r[2] * 1e3:.1f},{r[3] * 1e3:.1f}" for r in raw)
        f.write_text("\n".join(["time_s,x_mg,y_mg,z_mg", *rows]) + "\n")
    assert np.any(np.diff(raw[:, 0]) == 0) and np.ptp(np.diff(raw[:, 0])) > 0.01
    rc, doc, err = analyze(capsys, "acc", f)
    assert rc == 0, err
    reference = analyze_acc(scorer_clean(raw), 200.0).to_json()["mean_bpm"]
    assert abs(doc["mean_bpm"] - reference) < 0.1  # read as the scorer reads it
    assert abs(doc["mean_bpm"] - 60.0 / period_s) < 1.0  # and near the paced rate


def test_repeated_stamps_are_averaged_and_jitter_resampled(tmp_path):
    """A straight line sampled with jitter and repeats comes back as the same line."""
    rng = np.random.default_rng(3)
    t = np.round(np.arange(0, 12.0, 0.01) + rng.uniform(-0.004, 0.004, 1200), 3)
    t = np.maximum.accumulate(t)
    value = 5.0 + 20.0 * t
    dup = np.arange(1200) % 7 == 0  # every 7th sample logged twice, +-1 around the truth
    rows = []
    for ti, vi, d in zip(t, value, dup, strict=True):
        pairs = [(ti, vi - 1), (ti, vi + 1)] if d else [(ti, vi)]
        rows += [f"{a:.3f},{b:.3f}" for a, b in pairs]
    f = tmp_path / "ecg.csv"
    f.write_text("time_s,ecg_uv\n" + "\n".join(rows) + "\n")
    got = signalfile.read_ecg(f)
    distinct = np.unique(t)
    assert got.values.size == distinct.size
    assert got.fs_hz == pytest.approx((distinct.size - 1) / (distinct[-1] - distinct[0]))
    grid = distinct[0] + np.arange(distinct.size) / got.fs_hz
    assert np.max(np.abs(got.values - (5.0 + 20.0 * grid))) < 1e-3


# ----------------------------------------------------------------------------- Polar Sensor Logger


def test_polar_sensor_logger_acc(tmp_path, capsys):
    """A chest breathing 12/min, as the app writes it: 200 Hz, integer mG, stamps in ns."""
    fs, rng = 200.0, np.random.default_rng(7)
    t = np.arange(round(180 * fs)) / fs
    t_ns = sensor_ns(t * (1 + 3e-5) + rng.normal(0, 4e-4, t.size))  # clock drift, jitter
    breath = np.sin(2 * np.pi * 0.2 * t)
    acc = np.column_stack([-960 + 12 * breath, 40 + 4 * breath, 260 - 30 * breath])
    acc = np.round(acc + rng.normal(0, 3, acc.shape)).astype(int)
    rows = [f"{phone(ti)};{ns};{x};{y};{z}" for ti, ns, (x, y, z) in zip(t, t_ns, acc, strict=True)]
    f = tmp_path / "Polar_H10_ABCD1234_20260314_092653_ACC.txt"
    f.write_text(ACC_HEADER + "\n" + "\n".join(rows) + "\n")
    got = signalfile.read_acc(f)
    assert got.layout == "polar" and got.fs_hz == pytest.approx(fs, rel=1e-3)
    rc, doc, err = analyze(capsys, "acc", f)
    assert rc == 0, err
    assert doc["source"] == "acc" and abs(doc["mean_bpm"] - 12.0) < 0.5


def test_polar_sensor_logger_ecg_reads_like_coach_csv(tmp_path, capsys):
    """The same two minutes of a real ECG, as Polar Sensor Logger writes it and as coach does."""
    rec = DATA / "recordings" / "marsh_1000"
    ecg = signal.resample_poly(io.loadmat(rec / "ECG.mat")["ECG"].ravel() * 1e6, 13, 25)
    uv = np.round(ecg[: 130 * 120]).astype(int)
    t = np.arange(uv.size) / 130.0
    ns = sensor_ns(t)
    rows = [f"{phone(ti)};{n};{(n - ns[0]) / 1e6:.6g};{v}" for ti, n, v in zip(t, ns, uv,
                                                                               strict=True)]
    polar = tmp_path / "Polar_H10_ABCD1234_20260314_092653_ECG.txt"
    polar.write_text(ECG_HEADER + "\n" + "\n".join(rows) + "\n")
    plain = tmp_path / "ecg.csv"
    plain.write_text("time_s,ecg_uv\n" + "\n".join(f"{ti:.6f},{v}" for ti, v in zip(t, uv,
                                                                                  strict=True)))
    rc, from_polar, err = analyze(capsys, "ecg", polar)
    assert rc == 0, err
    from_plain = analyze(capsys, "ecg", plain)[1]
    assert from_polar["mean_bpm"] == pytest.approx(from_plain["mean_bpm"], abs=0.05)
    onsets = [[b["onset_s"] for b in d["breaths"]] for d in (from_polar, from_plain)]
    assert np.allclose(*onsets, atol=0.05)  # ns stamps: the grids differ by rounding only
    assert 4 < from_polar["mean_bpm"] < 30


def rsa_intervals(n: int = 400, breath_hz: float = 0.15) -> np.ndarray:
    beats = np.cumsum(np.full(n, 0.85))
    return np.round(850 + 60 * np.sin(2 * np.pi * breath_hz * beats), 0)


def rr_files(tmp_path: Path, rr: np.ndarray) -> dict[str, Path]:
    """The same intervals in every R-R format coach analyze accepts."""
    beats = np.cumsum(rr) / 1000.0
    texts = {
        "no header": [f"{v:.0f}" for v in rr],
        "rr_ms": ["rr_ms", *(f"{v:.0f}" for v in rr)],
        "time_s,rr_ms": ["time_s,rr_ms", *(f"{b:.6f},{v:.3f}" for b, v in zip(beats, rr,
                                                                              strict=True))],
        "polar rr": [RR_HEADER, *(f"{phone(b)};{v:.0f}" for b, v in zip(beats, rr, strict=True))],
        "polar ppi": [PPI_HEADER, *(f"{phone(b)};{v:.0f};5;0;1;1;{60000 / v:.0f}"
                                    for b, v in zip(beats, rr, strict=True))],
    }
    paths = {}
    for name, lines in texts.items():
        paths[name] = tmp_path / (re.sub(r"\W+", "_", name) + ".txt")
        paths[name].write_text("\r\n".join(lines) + "\r\n")  # Windows line ends too
    return paths


def test_every_rr_format_gives_the_same_analysis(tmp_path, capsys):
    rr = rsa_intervals()
    expected = analyze_rr(rr).to_json()
    assert 8.0 < expected["mean_bpm"] < 10.0  # 0.15 Hz: 9/min
    for name, path in rr_files(tmp_path, rr).items():
        rc, doc, err = analyze(capsys, "rr", path)
        assert rc == 0, (name, err)
        assert doc == expected, name


def test_coach_own_csv_export_is_read_back(tmp_path, capsys):
    rec, out = tmp_path / "s.coach", tmp_path / "csv"
    coach = [sys.executable, "-m", "coach.cli"]
    subprocess.run([*coach, "record", "--out", str(rec), "--scenario", "calm-anchor",
                    "--duration", "120", "--speed", "max"], check=True, capture_output=True,
                   timeout=300)
    subprocess.run([*coach, "export", str(rec), "--format", "csv", "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    assert (out / "A_rr.csv").read_text().startswith("time_s,rr_ms\n")
    ns = argparse.Namespace(ecg=None, acc=None, rr=None, recording=rec, label="A",
                            source="rr", causal=False, json=True)
    assert cmd.main(ns) == 0
    from_recording = json.loads(capsys.readouterr().out)
    rc, from_export, err = analyze(capsys, "rr", out / "A_rr.csv")
    assert rc == 0, err
    assert from_export["mean_bpm"] == pytest.approx(from_recording["mean_bpm"], abs=0.05)
    assert len(from_export["breaths"]) == len(from_recording["breaths"])
    for kind in ("ecg", "acc"):
        rc, doc, err = analyze(capsys, kind, out / f"A_{kind}.csv")
        assert rc == 0 and doc["source"] == kind, err


# ----------------------------------------------------------------------------- refusals


def even_rows(n: int, fs: float, cols: int) -> list[str]:
    return [f"{i / fs:.6f}" + ",1" * cols for i in range(n)]


BAD = {
    "empty": ("ecg", "", "empty file"),
    "blank lines only": ("rr", "\n\n  \n", "empty file"),
    "header only": ("ecg", "time_s,ecg_uv\n", "need at least 10 s"),
    "unknown header": ("acc", "t,x,y,z\n0,1,2,3\n", "unknown header"),
    "wrong columns": ("acc", "time_s,x_mg,y_mg\n0,1,2\n", "unknown header"),
    "ECG header to --acc": ("acc", "time_s,ecg_uv\n0,1\n", "unknown header"),
    "no header": ("acc", "0.0,-0.47,-0.02,0.87,0.99\n", "no header (line 1 is data)"),
    "headerless ECG": ("ecg", "0,1\n0.01,2\n", "no header"),
    "ragged row": ("acc", "time_s,x_mg,y_mg,z_mg\n0,1,2,3\n0.01,1,2\n", "line 3: 3 columns"),
    "extra column": ("ecg", "time_s,ecg_uv\n0,1\n0.01,1,5\n", "line 3: 3 columns"),
    "non-numeric": ("ecg", "time_s,ecg_uv\n0,1\n\n0.01,abc\n", "line 4: not numeric"),
    "NaN": ("acc", "time_s,x_mg,y_mg,z_mg\n0,1,2,3\n0.01,nan,2,3\n", "line 3: not a finite"),
    "inf": ("ecg", "time_s,ecg_uv\n0,1\n0.01,1e999\n", "line 3: not a finite"),
    "huge value": ("acc", "time_s,x_g,y_g,z_g\n0,1,2,3\n0.01,1e5,0,0\n", "line 3: a value beyond "
                   "10,000,000 (uV or mG)"),
    "huge time": ("ecg", "time_s,ecg_uv\n0,1\n1e300,1\n", "line 3: a time beyond 1e+10 s"),
    "backwards": ("ecg", "time_s,ecg_uv\n0.00,1\n0.01,1\n0.02,1\n0.015,1\n", "line 5: time runs "
                  "backwards"),
    "backwards RR": ("rr", "time_s,rr_ms\n0.8,800\n1.6,800\n1.5,800\n", "line 4: time runs"),
    "hole": ("ecg", "time_s,ecg_uv\n" + "\n".join(even_rows(600, 100.0, 1) + [
             f"{8 + i / 100:.2f},1" for i in range(600)]), "line 602: a 2.01 s hole"),
    "too slow": ("ecg", "time_s,ecg_uv\n" + "\n".join(even_rows(600, 50.0, 1)), "50 Hz"),
    "RR out of range": ("rr", "rr_ms\n800\n-5\n800\n", "line 3: R-R interval -5 ms"),
    "RR zero": ("rr", "800\n800\n0\n", "line 3: R-R interval 0 ms"),
    "two RR": ("rr", "800\n800\n", "2 R-R intervals, need at least 3"),
    "9 ms of RR": ("rr", "3\n3\n3\n", "the R-R intervals span 0.009 s, need at least 10 s"),
    "two numbers a line": ("rr", "800,810\n", "no header"),
    "Polar RR as ECG": ("ecg", RR_HEADER + "\n" + phone(0) + ";800\n", "unknown header"),
    "Polar row cut short": ("acc", ACC_HEADER + f"\n{phone(0)};1;2\n", "line 2: 3 columns"),
    "not UTF-8": ("ecg", b"time_s,ecg_uv\n0,1\n0.01,\xff\n", "line 3: not UTF-8"),
    "UTF-16": ("rr", "rr_ms\n800\n".encode("utf-16"), "UTF-16 text: save it as UTF-8"),
    "long line": ("rr", "8" * 5000, "line 1 is longer than 1000 bytes"),
    "long later line": ("rr", "800\n800\n" + "8" * 1001 + "\n", "line 3 is longer than"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_is_one_line_naming_the_problem(tmp_path, capsys, case):
    kind, content, says = BAD[case]
    f = tmp_path / "bad.txt"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    rc, _, err = analyze(capsys, kind, f)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"coach analyze: {f}: ") and says in err, err


def test_time_running_backwards_in_a_fresh_process(tmp_path):
    f = tmp_path / "acc.csv"
    rows = even_rows(3000, 200.0, 3)
    rows[1500] = "7.0,1,1,1"  # 7.0 s after 7.495 s
    f.write_text("time_s,x_mg,y_mg,z_mg\n" + "\n".join(rows) + "\n")
    done = subprocess.run([sys.executable, "-m", "coach.cli", "analyze", "--acc", str(f)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
    assert "line 1502: time runs backwards (7 s after 7.495 s on line 1501)" in done.stderr


def test_too_many_rows_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(signalfile, "MAX_ROWS", 2500)  # the real cap is 4 million rows
    f = tmp_path / "acc.csv"
    f.write_text("time_s,x_mg,y_mg,z_mg\n" + "\n".join(even_rows(3000, 200.0, 3)) + "\n")
    rc, _, err = analyze(capsys, "acc", f)
    assert rc == 2 and "more than 2500 rows" in err and "split the file" in err


# ----------------------------------------------------------------------------- memory


def run_limited(args: list[str], limit_mb: int) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter whose address space is capped (one BLAS thread: less to map)."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=300, check=False, preexec_fn=cap, env=env)


def test_a_2_gb_line_is_refused_in_bounded_memory(tmp_path):
    """Issue 16: ``analyze`` on a 2 GB one-line file took 21 GB (now: 400 MB is plenty)."""
    f = tmp_path / "one_line.csv"
    with f.open("wb") as out:  # sparse: 2 GB without a line break, little disk
        out.write(b"800")
        out.truncate(2 << 30)
    code = ("import sys; from coach.cli import main\n"
            "for kind in ('ecg', 'acc', 'rr'): print(main(['analyze', '--' + kind, sys.argv[1]]))")
    done = run_limited(["-c", code, str(f)], 400)
    assert done.stdout.split() == ["2", "2", "2"], done.stderr[-500:]
    said = f"coach analyze: {f}: line 1 is longer than 1000 bytes: not a file of samples\n"
    assert done.stderr == 3 * said


def test_a_long_recording_is_read_in_bounded_memory(tmp_path):
    """A million rows (1.4 h at 200 Hz, 22 MB) read in about 75 MB beside the interpreter."""
    n, rng = 1_000_000, np.random.default_rng(5)
    t = np.maximum.accumulate(np.round(np.arange(n) / 200.0 + rng.uniform(0, 0.003, n), 3))
    f = tmp_path / "acc.csv"
    f.write_text("time_s,x_mg,y_mg,z_mg\n" + "\n".join(map("{:.3f},-975,20,205".format, t)))
    code = ("import sys; from pathlib import Path; from coach.signalfile import read_acc; "
            "s = read_acc(Path(sys.argv[1])); print(s.values.shape[0], round(s.fs_hz))")
    done = run_limited(["-c", code, str(f)], 300)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == [str(np.unique(t).size), "200"]
