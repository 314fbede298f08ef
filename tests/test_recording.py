"""Recorder and reader: lossless round trip, privacy, commit cadence, crash safety."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coach.clock import VirtualClock
from coach.recording import (
    Recorder,
    RecordingError,
    RecordingReader,
    decode_samples,
    encode_samples,
)
from coach.replay import replay_sources
from coach.salvage import recover
from coach.types import AccChunk, Command, EcgChunk, HeartRate, Marker, StrapStatus

ROOT = Path(__file__).resolve().parents[1]


def synthetic(n_s: int, seed: int = 0) -> list[object]:
    """Two Polar-like straps: ECG 130 Hz, ACC 200 Hz in frames, HR each second."""
    rng = np.random.default_rng(seed)
    events: list[object] = []
    for k in range(n_s * 4):
        t = k * 0.25
        for label in "AB":
            events.append(EcgChunk(t, label, 130.0, rng.integers(-3000, 3000, 33)))
            events.append(AccChunk(t, label, 200.0, rng.integers(-1100, 1100, (50, 3))))
            if k % 4 == 3:
                events.append(HeartRate(t, label, 61.5, (990.234, 1001.0), (t - 1.0, t),
                                        True))
    return events


@given(arrays(np.float64, st.integers(0, 50),
              elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_samples_round_trip_exactly(values: np.ndarray) -> None:
    code, blob = encode_samples(values)
    back = decode_samples(code, blob, 1)
    np.testing.assert_array_equal(back, values)


def test_integer_samples_are_stored_as_int16() -> None:
    code, blob = encode_samples(np.array([-32768.0, 0.0, 32767.0]))
    assert code == "<i2" and len(blob) == 6


def test_every_event_comes_back_equal_and_in_order(tmp_path: Path) -> None:
    events = [*synthetic(5), StrapStatus(5.0, "B", "lost", 40, "gone"),
              Marker(5.5, "rupture", "raised voices")]
    path = tmp_path / "s.coach"
    with Recorder(path, labels=("A", "B"), settings={"scenario": "x"}) as rec:
        for e in events:
            rec.write(e)
        clock_t = [6.0]
        rec._now = lambda: clock_t[0]  # a command carries no time: the clock stamps it
        rec.write(Command("pace", 6.0))
    with RecordingReader(path) as reader:
        got = [e.item for e in reader.entries()]
        assert reader.settings == {"scenario": "x"} and reader.closed_cleanly
    assert len(got) == len(events) + 1
    for a, b in zip(events, got, strict=False):
        assert type(a) is type(b)
        for name in a.__slots__:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert got[-1] == Command("pace", 6.0)


def test_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "s.coach"
    rec = Recorder(path, labels=("A",))
    rec.write(HeartRate(1.0, "A", 60.0))
    rec.commit_if_due()
    for f in (path, Path(f"{path}-wal")):
        assert f.stat().st_mode & 0o777 == 0o600, f
    rec.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_commits_once_a_second_of_wall_time(tmp_path: Path) -> None:
    wall = [0.0]
    path = tmp_path / "s.coach"
    rec = Recorder(path, labels=("A",), wall=lambda: wall[0])
    other = sqlite3.connect(path)
    count = lambda: other.execute("SELECT count(*) FROM events").fetchone()[0]  # noqa: E731
    for k in range(10):
        wall[0] = k * 0.1
        rec.write(HeartRate(k * 0.1, "A", 60.0))
    assert count() == 0  # 0.9 s: still in the open transaction
    wall[0] = 1.0
    rec.write(HeartRate(1.0, "A", 60.0))
    assert count() == 11
    other.close()
    rec.close()


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "s.coach"
    Recorder(path, labels=("A",)).close()
    with pytest.raises(RecordingError, match="already exists"):
        Recorder(path, labels=("A",))


def test_garbage_and_missing_files_give_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.coach"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(RecordingError, match="not a coach recording"):
        RecordingReader(bad)
    with pytest.raises(RecordingError, match="no such recording"):
        RecordingReader(tmp_path / "none.coach")


@pytest.mark.parametrize("keep", [0.35, 0.8])
def test_truncated_file_names_what_was_recovered(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "s.coach"
    events = synthetic(300)
    with Recorder(path, labels=("A", "B")) as rec:
        for e in events:
            rec.write(e)
    size = path.stat().st_size
    os.truncate(path, int(size * keep))
    with pytest.raises(RecordingError, match=r"recovered \d+ events") as info:
        RecordingReader(path)
    message = str(info.value)
    assert "\n" not in message and "s.recovered.coach" in message
    with RecordingReader(tmp_path / "s.recovered.coach") as reader:
        n = reader.count()
        assert 0.5 * keep * len(events) < n < len(events)
        list(reader.entries())  # every recovered row decodes


def test_recover_reports_counts(tmp_path: Path) -> None:
    path = tmp_path / "s.coach"
    with Recorder(path, labels=("A", "B")) as rec:
        for e in synthetic(10):
            rec.write(e)
    result = recover(path)
    assert result.events == len(synthetic(10)) and result.labels == ("A", "B")
    assert result.kinds["acc"] == 80


CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from coach.recording import Recorder
    from coach.types import EcgChunk, StrapStatus
    rec = Recorder(sys.argv[1], labels=("A",), now=time.monotonic,
                   t_origin_s=time.monotonic())
    print("ready", flush=True)
    k = 0
    while True:
        rec.write(StrapStatus(time.monotonic(), "A", "ok", note=str(k)))
        rec.write(EcgChunk(time.monotonic(), "A", 130.0, np.arange(13.0) + k))
        k += 1
        time.sleep(0.01)
""")


def test_kill_9_loses_at_most_the_last_second(tmp_path: Path) -> None:
    path = tmp_path / "killed.coach"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(random.uniform(1.5, 3.5))
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    with RecordingReader(path) as reader:
        assert not reader.closed_cleanly
        status = [e for e in reader.entries() if e.kind == "status"]
        assert [int(e.item.note) for e in status] == list(range(len(status)))  # no holes
        assert status[-1].rx_s >= killed_at - 1.0 - 0.15  # slack: one write + fsync
        assert reader.count(("ecg",)) >= len(status) - 1

        async def drain() -> int:
            sources = replay_sources(reader, clock)
            return sum([1 async for _ in sources["A"]])

        clock = VirtualClock()
        assert clock.run(drain()) == reader.count(("status", "ecg"))
