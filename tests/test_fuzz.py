"""Fuzzing every parser and file reader: nothing escapes but the documented error.

Targets and their contracts:

- ``drivers.hrs`` (Heart Rate Measurement, Battery Level) and ``drivers.pmd`` (data
  frames, control point responses, settings, features): a value or
  :class:`drivers.MalformedFrame`;
- ``coach analyze --ecg/--acc/--rr`` CSV input: exit 0 with JSON on stdout, or exit 2
  with exactly one ``coach analyze: ...`` line on stderr;
- :class:`coach.recording.RecordingReader` and :func:`coach.salvage.recover` on
  truncated or overwritten files (and WALs): data or
  :class:`coach.recording.RecordingError`;
- ``coach.mqtt.codec.parse_control`` and ``state_from_json``: a value or
  :class:`coach.mqtt.PayloadError`.

Each target is a ``check_*`` function over one generated input plus a strategy that
builds inputs both at random and from valid messages with mutated bytes. A warning is
an escape too (it would put a second line on a CLI's stderr). ``bench/fuzz.py`` runs
the same targets for a million inputs; ``docs/fuzzing.md`` has the counts.

Profiles: ``ci`` (default: few examples, derandomized, no database) and ``long``,
selected with ``HYPOTHESIS_PROFILE=long``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from coach.commands import analyze as analyze_cmd
from coach.mqtt import PayloadError, codec
from coach.recording import Recorder, RecordingError, RecordingReader
from coach.salvage import recover
from coach.types import AccChunk, Command, EcgChunk, HeartRate, Marker, StrapStatus
from drivers import MalformedFrame, hrs, pmd
from sims.straps import (
    control_response,
    encode_acc_frame,
    encode_ecg_frame,
    encode_heart_rate_measurement,
)

# ----------------------------------------------------------------------------- profiles

settings.register_profile(
    "ci", max_examples=200, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=200_000, derandomize=False, database=None, deadline=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def fuzz(weight: float = 1.0) -> settings:
    """The active profile, with ``weight`` times its examples (cheap targets get more)."""
    return settings(PROFILE, max_examples=max(10, int(PROFILE.max_examples * weight)))


@contextlib.contextmanager
def warnings_as_errors() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ----------------------------------------------------------------------------- mutation


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """A valid message with bytes overwritten, inserted, deleted, or cut at the end."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(("set", "insert", "delete", "truncate", "flip")))
        pos = draw(st.integers(0, len(data)))
        if op == "set" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


# ----------------------------------------------------------------------------- HRS

valid_hrm = st.builds(
    encode_heart_rate_measurement,
    st.integers(0, 65535),
    st.lists(st.floats(1.0, 63_999.0), max_size=9).map(tuple),
    st.none() | st.booleans(),
    st.none() | st.integers(0, 65535),
)
hrs_inputs = st.binary(max_size=24) | mutated(valid_hrm) | mutated(st.just(b"\x57"))


def check_hrs(data: bytes) -> None:
    """Heart rate and battery parsers: a sane value or MalformedFrame, nothing else."""
    with warnings_as_errors():
        try:
            m = hrs.parse_heart_rate_measurement(data)
        except MalformedFrame:
            pass
        else:
            assert 0 <= m.hr_bpm <= 65535
            assert all(0 < r < 64_000 for r in m.rr_ms)
        try:
            level = hrs.parse_battery_level(data)
        except MalformedFrame:
            pass
        else:
            assert 0 <= level <= 100


@fuzz(2.0)
@given(hrs_inputs)
def test_fuzz_hrs(data: bytes) -> None:
    check_hrs(data)


# ----------------------------------------------------------------------------- PMD

_ts = st.integers(0, 2**64 - 1)
_ecg = st.lists(st.integers(-(2**23), 2**23 - 1), min_size=1, max_size=80)
_acc = st.lists(st.tuples(*[st.integers(-(2**15), 2**15 - 1)] * 3), min_size=1, max_size=40)
valid_frames = (
    st.builds(lambda t, v: encode_ecg_frame(t, np.array(v)), _ts, _ecg)
    | st.builds(lambda t, v, c: encode_acc_frame(t, np.array(v), compressed=c),
                _ts, _acc, st.booleans())
)
# any positive finite float32: what parse_settings can hand decode_frame as a factor
factors = st.floats(0.0, None, exclude_min=True, allow_infinity=False, width=32)


@st.composite
def pmd_frame_inputs(draw: st.DrawFn) -> tuple[bytes, int, float]:
    data = draw(st.binary(max_size=120) | mutated(valid_frames))
    res = draw(st.sampled_from((16, 14)) | st.integers(1, 32))
    factor = draw(st.sampled_from((1.0, 2.44e-4)) | factors)
    return data, res, factor


def check_pmd_frame(args: tuple[bytes, int, float]) -> None:
    data, res, factor = args
    with warnings_as_errors():
        try:
            f = pmd.decode_frame(data, resolution_bits=res, factor=factor)
        except MalformedFrame:
            return
    assert f.samples.dtype == np.int64 and not f.samples.flags.writeable
    assert f.samples.shape[0] >= 1
    assert f.samples.shape[1:] == ((3,) if f.kind == "acc" else ())


@fuzz(1.0)
@given(pmd_frame_inputs())
@example((bytes([2, *range(8), 0x80]) + b"\x01\x00" * 3 + b"\x10\x01" + b"\xff" * 6, 16,
          3.4028234663852886e38))  # a huge factor overflowed the float32 scaling
def test_fuzz_pmd_frames(args: tuple[bytes, int, float]) -> None:
    check_pmd_frame(args)


_setting = st.sampled_from(sorted(pmd.SETTING_SIZES)).flatmap(
    lambda sid: st.lists(st.binary(min_size=pmd.SETTING_SIZES[sid],
                                   max_size=pmd.SETTING_SIZES[sid]), max_size=4)
    .map(lambda vals: bytes([sid, len(vals)]) + b"".join(vals))
)
valid_responses = st.builds(
    lambda op, mt, status, params: control_response(op, mt, status, b"".join(params)),
    st.integers(1, 3), st.integers(0, 12), st.integers(0, 15), st.lists(_setting, max_size=4),
)
ok_factor_response = st.builds(  # what starting a Verity Sense ACC stream answers
    lambda f: control_response(2, 2, 0, b"\x05\x01" + struct.pack("<f", f)),
    st.floats(width=32, allow_nan=True, allow_infinity=True),
)
control_point_inputs = st.tuples(
    st.binary(max_size=40) | mutated(valid_responses) | mutated(st.just(b"\x0f\x05\x00"))
    | ok_factor_response,
    mutated(st.builds(lambda t, v: encode_acc_frame(t, np.array(v), compressed=True),
                      _ts, _acc)),
)


def check_pmd_control(args: tuple[bytes, bytes]) -> None:
    """Control point parsing, then a compressed frame scaled by the factor it returned."""
    data, frame = args
    with warnings_as_errors():
        with contextlib.suppress(MalformedFrame):
            assert pmd.parse_features(data) <= set(pmd.MEASUREMENT_KINDS.values())
        try:
            resp = pmd.parse_control_point_response(data)
            found = pmd.parse_settings(resp.params)
        except MalformedFrame:
            return
        assert isinstance(resp.error, str)
        factor = found.get("factor", (1.0,))[0]
        assert math.isfinite(factor) and factor > 0
        with contextlib.suppress(MalformedFrame):
            pmd.decode_frame(frame, factor=factor)


@fuzz(1.0)
@given(control_point_inputs)
@example((bytes.fromhex("F0020200000501" "0000C07F"), b""))  # factor NaN
@example((bytes.fromhex("F0020200000501" "0000807F"), b""))  # factor +inf
@example((bytes.fromhex("F002020000" "0500"), b""))  # a factor without values: IndexError
def test_fuzz_pmd_control_point(args: tuple[bytes, bytes]) -> None:
    check_pmd_control(args)


# ----------------------------------------------------------------------------- CSV input

_COLUMNS = {"ecg": "time_s,ecg_uv", "acc": "time_s,x_mg,y_mg,z_mg"}
_LOW_RATE_HZ = {"ecg": 100.0, "acc": 10.0}  # the lowest rates the reader accepts
_cell = (
    st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.integers(-(10**30), 10**30).map(str)
    | st.sampled_from(("", " ", "nan", "-inf", "1e999", "0x10", "1,5", "\x00", "é", "#"))
)


# the other headers coach analyze accepts (docs/files.md), Polar Sensor Logger's among them
_OTHER_HEADERS = (
    "time_s,x_g,y_g,z_g,total_g", "rr_ms", "time_s,rr_ms",
    "Phone timestamp;sensor timestamp [ns];X [mg];Y [mg];Z [mg]",
    "Phone timestamp;sensor timestamp [ns];timestamp [ms];ecg [uV]",
    "Phone timestamp;RR-interval [ms]",
    "Phone timestamp;PP-interval [ms];error estimate [ms];blocker;contact;contact;hr [bpm]",
)


@st.composite
def garbage_csv(draw: st.DrawFn, kind: str) -> bytes:
    """Wrong or right headers, odd cells, ragged rows, stray encodings."""
    header = draw(st.sampled_from((_COLUMNS.get(kind, ""), "a,b", " time_s , ecg_uv ",
                                   "\ufefftime_s,ecg_uv", "", *_OTHER_HEADERS)))
    ncols = draw(st.integers(1, 5))
    rows = draw(st.lists(st.lists(_cell, min_size=ncols, max_size=ncols), max_size=12))
    sep = ";" if ";" in header else ","
    text = "\n".join([header, *(sep.join(r) for r in rows)])
    codec_name = draw(st.sampled_from(("utf-8", "utf-16", "latin-1")))
    return text.encode(codec_name, errors="replace")


@st.composite
def plausible_csv(draw: st.DrawFn, kind: str) -> bytes:
    """A file the reader accepts, with signals the analysis may choke on."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "rr":
        n = draw(st.integers(3, 120))
        shape = draw(st.sampled_from(("steady", "noise", "extreme")))
        rr = {"steady": np.full(n, 800.0), "noise": rng.uniform(200, 2000, n),
              "extreme": rng.choice([0.001, 1.0, 59_999.0, 800.0], n)}[shape]
        header = draw(st.sampled_from(("", "rr_ms", "Phone timestamp;RR-interval [ms]")))
        cells = [f"2026-03-14T09:26:53.000;{v!r}" if ";" in header else f"{v!r}" for v in rr]
        return "\n".join([header, *cells] if header else cells).encode()
    fs = draw(st.sampled_from((_LOW_RATE_HZ[kind], 130.0, 200.0)))
    n = round(fs * draw(st.floats(10.0, 14.0)))
    t = np.arange(n) / fs
    if draw(st.booleans()):  # a phone logger's stamps: jittered, ms resolution, repeats
        t = np.maximum.accumulate(np.round(t + rng.uniform(0, 0.5 / fs, n), 3))
    shape = draw(st.sampled_from(("zero", "sine", "noise", "spikes", "huge", "step")))
    amp = draw(st.sampled_from((1.0, 1e3, 1e6)))
    wave = {
        "zero": np.zeros(n), "sine": np.sin(2 * np.pi * 0.25 * t),
        "noise": rng.standard_normal(n), "spikes": (np.arange(n) % max(1, round(fs)) == 0) * 1.0,
        "huge": rng.choice([-1.0, 1.0], n), "step": (t > t[-1] / 2) * 1.0,
    }[shape] * amp
    cols = 1 if kind == "ecg" else 3
    data = np.column_stack([t, *[wave * (k + 1) for k in range(cols)]])
    if draw(st.booleans()):  # as Polar Sensor Logger writes it: ns stamps, phone time first
        header = _OTHER_HEADERS[3 if kind == "acc" else 4]
        lines = [header, *(f"2026-03-14T09:26:53.000;{round(6e17 + row[0] * 1e9)}"
                           + ("" if kind == "acc" else ";0")
                           + "".join(f";{v:.0f}" for v in row[1:]) for row in data)]
        return "\n".join(lines).encode()
    lines = [_COLUMNS[kind], *(",".join(f"{v:.6g}" for v in row) for row in data)]
    return "\n".join(lines).encode()


@st.composite
def analyze_inputs(draw: st.DrawFn) -> tuple[str, bool, bytes]:
    kind = draw(st.sampled_from(("ecg", "acc", "rr")))
    body = draw(st.binary(max_size=200) | garbage_csv(kind) | plausible_csv(kind)
                | mutated(plausible_csv(kind)))
    return kind, draw(st.booleans()), body


def flat_csv(kind: str, fs_hz: float, duration_s: float) -> bytes:
    """A flat, evenly sampled file: an explicit example for rate and length limits."""
    t = np.arange(round(fs_hz * duration_s)) / fs_hz
    zeros = ",0" * (1 if kind == "ecg" else 3)
    return "\n".join([_COLUMNS[kind], *(f"{v:.6g}{zeros}" for v in t)]).encode()


def check_analyze(args: tuple[str, bool, bytes]) -> None:
    """``coach analyze`` on a file: JSON and exit 0, or one stderr line and exit 2."""
    kind, causal, body = args
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"input.{'txt' if kind == 'rr' else 'csv'}"
        path.write_bytes(body)
        ns = argparse.Namespace(ecg=None, acc=None, rr=None, causal=causal, json=True)
        setattr(ns, kind, path)
        out, err = io.StringIO(), io.StringIO()
        with warnings_as_errors(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            rc = analyze_cmd.main(ns)
    if rc == 2:
        lines = err.getvalue().splitlines()
        assert out.getvalue() == "" and len(lines) == 1, err.getvalue()
        assert lines[0].startswith("coach analyze: ")
    else:
        assert rc == 0 and err.getvalue() == "", (rc, err.getvalue())
        assert {"breaths", "rate", "mean_bpm"} <= set(json.loads(out.getvalue()))


def test_cli_refusal_is_one_line_without_traceback(tmp_path: Path) -> None:
    """End to end, in a fresh interpreter: the too-short file that used to crash."""
    f = tmp_path / "short.csv"
    f.write_bytes(b"time_s,x_mg,y_mg,z_mg\n0,1,2,3\n0.005,1,2,3\n")
    done = subprocess.run([sys.executable, "-m", "coach.cli", "analyze", "--acc", str(f)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


@fuzz(0.5)
@given(analyze_inputs())
@example(("acc", False, b"time_s,x_mg,y_mg,z_mg\n0,1,2,3\n0.005,1,2,3\n"))  # too short
@example(("ecg", False, b"time_s,ecg_uv\n"))  # header only: numpy warned
@example(("ecg", False, b"time_s,ecg_uv\n-1e308,0\n1e308,0\n"))  # dt overflowed to inf
@example(("ecg", False, b"time_s,ecg_uv\n0,0\n1000000,0\n"))  # 1 uHz: filter design failed
@example(("rr", False, b"1e308\n1e308\n1e308\n"))  # beat times overflowed
@example(("rr", True, b"3\n3\n3\n"))  # 9 ms of beats: the causal replay had no second
@example(("acc", False, b"time_s,x_g,y_g,z_g\n0,1e308,0,0\n"))  # g to mG overflowed
@example(("ecg", False, flat_csv("ecg", 50.0, 12.0)))  # ECG filters need > 80 Hz
@example(("acc", False, b"t\x1dime_s,x_mg,y_mg,z_mg\n0,0,0,0\n"))  # echoed a line break
def test_fuzz_analyze_cli(args: tuple[str, bool, bytes]) -> None:
    check_analyze(args)


# ----------------------------------------------------------------------------- recordings


def _write_events(r: Recorder) -> None:
    rng = np.random.default_rng(7)
    for k in range(12):
        t = 100.0 + k * 0.5
        for label in "AB":
            r.write(EcgChunk(t, label, 130.0, rng.integers(-3000, 3000, 65)))
            r.write(AccChunk(t, label, 200.0, rng.integers(-1100, 1100, (100, 3))))
            r.write(HeartRate(t, label, 61.5, (990.2, 1001.0), (t - 1.0, t), True))
        if k % 4 == 0:
            # a chunk bigger than a page: its row continues on overflow pages
            r.write(AccChunk(t, "B", 200.0, rng.integers(-30000, 30000, (1000, 3))))
            r.write(StrapStatus(t, "A", "ok", 80, "fine"))
            r.write(Marker(t, "calm", "note"))
            r.write(Command("pace", 6.0, "remote"))
            r.write_settings(t, {"pace_bpm": 6.0})


@cache
def base_recordings() -> dict[str, dict[str, bytes]]:
    """Bytes of a cleanly closed recording, and of one whose writer died (db + WAL)."""
    out: dict[str, dict[str, bytes]] = {}
    with tempfile.TemporaryDirectory() as d:
        clean = Path(d) / "clean.coach"
        with Recorder(clean, labels=("A", "B"), settings={"pace": 6}, t_origin_s=100.0) as r:
            _write_events(r)
        out["clean"] = {"": clean.read_bytes()}
        crashed = Path(d) / "crashed.coach"
        r = Recorder(crashed, labels=("A", "B"), t_origin_s=100.0, commit_interval_s=0.0)
        _write_events(r)
        r.commit_if_due()
        out["crashed"] = {"": crashed.read_bytes(),
                          "-wal": crashed.with_name(crashed.name + "-wal").read_bytes()}
        r.close()
    return out


@st.composite
def recording_inputs(draw: st.DrawFn) -> dict[str, bytes]:
    """A recording (and WAL) with byte runs overwritten and possibly cut short."""
    files = dict(base_recordings()[draw(st.sampled_from(("clean", "crashed")))])
    suffix = draw(st.sampled_from(sorted(files)))
    data = bytearray(files[suffix])
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(data) - 1))
        run = draw(st.binary(min_size=1, max_size=64)
                   | st.integers(1, 4096).map(lambda n: b"\x00" * n))
        data[pos : pos + len(run)] = run[: len(data) - pos]
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))):]
    files[suffix] = bytes(data)
    return files


def _read_everything(reader: RecordingReader) -> None:
    _ = (reader.labels, reader.settings, reader.t_origin_s, reader.closed_cleanly,
         reader.duration_s, reader.time_range(), reader.count(), reader.count(("ecg",)))
    for _entry in reader.entries():
        pass


def check_recording(files: dict[str, bytes]) -> None:
    """Open, read all, salvage: data or RecordingError, never anything else."""
    with tempfile.TemporaryDirectory() as d, warnings_as_errors():
        path = Path(d) / "rec.coach"
        for suffix, data in files.items():
            path.with_name(path.name + suffix).write_bytes(data)
        try:
            with RecordingReader(path) as reader:
                _read_everything(reader)
        except RecordingError as exc:
            assert "\n" not in str(exc)
        try:  # salvage a healthy file too: it must not trust a row's types either
            result = recover(path, Path(d) / "salvaged.coach")
        except RecordingError:
            return
        try:
            with RecordingReader(result.output, recover=False) as reader:
                _read_everything(reader)
        except RecordingError as exc:
            assert "\n" not in str(exc)


@fuzz(0.25)
@given(recording_inputs())
@example({"": b"SQLite format 3\x00\x10\x00\x02"})  # salvage read past a short header
@example({"": b"SQLite format 3\x00" + bytes(200)})  # page size 0: ZeroDivisionError
def test_fuzz_recordings(files: dict[str, bytes]) -> None:
    check_recording(files)


def _recording_with(sql: str) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.coach"
        path.write_bytes(base_recordings()["clean"][""])
        db = sqlite3.connect(path)
        db.execute(sql)
        db.commit()
        db.close()
        return {"": path.read_bytes()}


def test_rows_that_decode_to_garbage_are_recording_errors() -> None:
    """Regressions: bytes inside a row can change without SQLite noticing."""
    for sql in (
        "UPDATE events SET json = '{' WHERE kind = 'hr'",
        "UPDATE events SET dtype = '<i3' WHERE kind = 'ecg'",
        "UPDATE events SET data = x'01' WHERE kind = 'acc'",
        "UPDATE events SET label = 'Z' WHERE kind = 'ecg'",
        "UPDATE events SET fs_hz = -1 WHERE kind = 'acc'",
        "UPDATE events SET json = '{\"kind\": 1}' WHERE kind = 'marker'",
        "UPDATE meta SET value = '7' WHERE key = 'labels'",
        "UPDATE meta SET value = '\"x\"' WHERE key = 't_origin_s'",
        "UPDATE meta SET value = '[1]' WHERE key = 'settings'",
        "UPDATE events SET label = x'01' WHERE id = 1",  # salvage sorted bytes with str
    ):
        check_recording(_recording_with(sql))


def test_broken_cells_give_a_one_line_error() -> None:
    """Regression: quick_check lists each broken cell on its own line; one is shown."""
    data = bytearray(base_recordings()["clean"][""])
    data[2 * 4096 + 8 : 2 * 4096 + 24] = b"\xff" * 16  # page 3's cell pointers
    check_recording({"": bytes(data)})
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.coach"
        path.write_bytes(data)
        with pytest.raises(RecordingError, match="more problems") as err:
            RecordingReader(path, recover=False)
        assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- control


json_scalars = (
    st.none() | st.booleans() | st.integers(-(10**400), 10**400)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
_control_keys = st.sampled_from(("kind", "value", "note", "extra", "", "KIND"))
control_objects = st.dictionaries(
    _control_keys,
    st.sampled_from(codec.CONTROL_KINDS) | st.sampled_from(("A", "B", "T", 6, 0.5, True))
    | json_values,
    max_size=4,
)
_number = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**400), 10**400)
partner_objects = st.dictionaries(
    st.sampled_from((*codec._PARTNER_NUMBERS, "status", "battery_pct", "source", "x")),
    _number | st.sampled_from(codec.STATUS_WORDS) | json_values, max_size=6,
)
state_objects = st.fixed_dictionaries(
    {},
    optional={
        "t_s": _number | json_values,
        "partners": st.dictionaries(st.sampled_from(("A", "B", "T", "Q")), partner_objects,
                                    max_size=3) | json_values,
        "anchor": st.sampled_from(("A", "B", None, "Q")) | json_values,
        "pacer": st.fixed_dictionaries({k: _number for k in ("t0_s", "phase0", "rate_bpm",
                                                              "ie_ratio")},
                                       optional={"holding": json_values, "mode": json_values})
        | json_values,
        "markers": st.lists(st.fixed_dictionaries({"t_s": _number},
                                                  optional={"kind": json_values,
                                                            "note": json_values}), max_size=3)
        | json_values,
        "extra": json_values,
    },
)


def _deep(depth: int, open_: str, close: str) -> bytes:
    return f'{{"kind":"pace","value":{open_ * depth}1{close * depth}}}'.encode()


def _encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


payloads = (
    st.binary(max_size=64)
    | control_objects.map(_encode)
    | mutated(control_objects.map(_encode))
    | state_objects.map(_encode)
    | mutated(state_objects.map(_encode))
    | st.builds(_deep, st.integers(1, 8000), st.just("["), st.just("]"))
    | st.builds(_deep, st.integers(1, 3000), st.just('{"a":'), st.just("}"))
)
control_inputs = st.tuples(payloads, st.floats(-1e9, 1e9) | st.sampled_from((0.0, 1e308)))


def check_control(args: tuple[bytes, float]) -> None:
    """Control and state payloads: a valid object or PayloadError, nothing else."""
    payload, origin = args
    with warnings_as_errors():
        try:
            cmd = codec.parse_control(payload)
        except PayloadError:
            pass
        else:
            assert cmd.kind in codec.CONTROL_KINDS
            json.dumps(codec.command_to_json(cmd), allow_nan=False)
        try:
            obj = codec.loads_object(payload)
            state = codec.state_from_json(obj, origin)
        except PayloadError:
            return
    assert math.isfinite(state.t_s)
    assert all(math.isfinite(m.t_s) for m in state.markers)


@fuzz(1.0)
@given(control_inputs)
@example((_deep(5000, "[", "]"), 0.0))  # RecursionError escaped json.loads
@example((b'{"t_s": 1' + b"0" * 400 + b', "partners": {}}', 0.0))  # int too big for float
@example((b'{"t_s": 1e308, "partners": {}}', 1e308))  # t_s overflowed to inf
def test_fuzz_control_messages(args: tuple[bytes, float]) -> None:
    check_control(args)


# ----------------------------------------------------------------------------- registry

#: name -> (strategy, check, relative cost); bench/fuzz.py runs these for the long run.
TARGETS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], None], float]] = {
    "hrs": (hrs_inputs, check_hrs, 1.0),
    "pmd_frames": (pmd_frame_inputs(), check_pmd_frame, 1.0),
    "pmd_control_point": (control_point_inputs, check_pmd_control, 1.0),
    "analyze_csv": (analyze_inputs(), check_analyze, 0.1),
    "recordings": (recording_inputs(), check_recording, 0.03),
    "control_messages": (control_inputs, check_control, 1.0),
}


def test_every_target_is_fuzzed_here() -> None:
    names = {n.removeprefix("test_fuzz_") for n in globals() if n.startswith("test_fuzz_")}
    assert len(names) == len(TARGETS)
