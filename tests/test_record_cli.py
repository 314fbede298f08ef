"""Recording live sessions: ``coach demo --record`` and ``coach run`` (on by default).

The demos run as the user runs them, in subprocesses, through the real drivers over
simulated straps; the windowed ones render offscreen. Every wait has a deadline.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from coach.recording import RecordingReader

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def coach(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coach.cli", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def _rate(state: dict[str, Any]) -> float | None:
    pacer = state.get("pacer") or {}
    return pacer.get("rate_bpm")


@pytest.fixture(scope="module")
def live_and_replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list]:
    path = tmp_path_factory.mktemp("rec") / "demo.coach"
    live = coach("demo", "--headless", "--record", str(path), "--duration", "60",
                 "--speed", "max", "--json")
    assert live.returncode == 0, live.stderr[-2000:]
    replay = coach("replay", str(path), "--speed", "max", "--json")
    assert replay.returncode == 0, replay.stderr[-2000:]
    lines = [json.loads(x) for x in live.stdout.splitlines() if x.strip()]
    replayed = [json.loads(x) for x in replay.stdout.splitlines() if x.strip()]
    assert replayed[-1]["summary"] is True and replayed[-1]["states"] == 600
    return path, lines, replayed[:-1]


def test_headless_demo_records_and_replay_gives_its_states(live_and_replayed) -> None:
    path, lines, replayed = live_and_replayed
    summary, live = lines[-1], lines[:-1]
    assert summary.get("summary") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with RecordingReader(path) as reader:
        assert reader.closed_cleanly
        assert reader.duration_s == pytest.approx(60.0, abs=0.01)
        kinds = {e.kind for e in reader.raw()}
        assert {"hr", "ecg", "acc"} <= kinds  # raw strap data, as the drivers gave it
        assert sum(1 for _ in reader.states()) == pytest.approx(600, abs=2)  # 10 Hz
    assert len(replayed) == len(live) == 60
    final, again = summary["final"], replayed[-1]
    assert again["t_s"] == pytest.approx(final["t_s"])
    assert again["anchor"] == final["anchor"]
    assert _rate(again) == pytest.approx(_rate(final), abs=1e-6)
    for a, b in zip(live, replayed, strict=True):  # and every second before it
        assert (b["t_s"], b["anchor"]) == (a["t_s"], a["anchor"])
        ra, rb = _rate(a), _rate(b)
        assert (ra is None and rb is None) or math.isclose(ra, rb, abs_tol=1e-6)


def test_demo_refuses_to_overwrite_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "taken.coach"
    path.write_bytes(b"precious")
    out = coach("demo", "--headless", "--record", str(path), "--duration", "5",
                "--speed", "max")
    assert out.returncode == 2
    assert "already exists" in out.stderr and "Traceback" not in out.stderr
    assert path.read_bytes() == b"precious"


def _rows(path: Path, kind: str) -> int:
    """Committed rows of ``kind`` (0 while the file is not there yet)."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM events WHERE kind = ?",
                                  (kind,)).fetchone()[0])
    except sqlite3.Error:
        return 0


def _signal_when_recording(args: list[str], path: Path, sig: int,
                           stdout: list[str] | None = None) -> tuple[float, str]:
    """Start a demo, wait for committed ECG rows (bounded), send ``sig``; (when, stderr).

    ``stdout``, when given, receives what the command printed there.
    """
    proc = subprocess.Popen([sys.executable, "-m", "coach.cli", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60.0
        while _rows(path, "ecg") < 30:
            assert proc.poll() is None, "the demo ended early"
            assert time.monotonic() < deadline, "no ECG recorded within 60 s"
            time.sleep(0.2)
        time.sleep(1.5)  # mid-session
        sent = time.monotonic()  # CLOCK_MONOTONIC: the child's RealClock reads the same
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
        if stdout is not None:
            stdout.append(out)
        assert time.monotonic() - sent < 10.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return sent, err


def _assert_recorded_until(path: Path, sent: float) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with RecordingReader(path) as reader:
        assert reader.closed_cleanly  # flushed, checkpointed and closed
        last_raw = max(e.rx_s for e in reader.raw())
        last_state = max(s["t_s"] for s in reader.states())
        assert {e.kind for e in reader.raw()} >= {"hr", "ecg", "acc"}
    assert last_raw >= sent - 1.0, f"raw events end {sent - last_raw:.2f} s before the signal"
    assert last_state >= sent - 1.0


SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
SIGNAL_IDS = ["SIGTERM", "SIGHUP", "Ctrl+C"]


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
def test_windowed_demo_closes_its_recording_on_a_signal(tmp_path: Path, sig: int) -> None:
    path = tmp_path / "windows.coach"
    sent, err = _signal_when_recording(["demo", "--record", str(path), "--windowed"], path,
                                       sig)
    _assert_recorded_until(path, sent)
    assert f"recorded to {path}" in err  # says where it saved


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
def test_headless_demo_closes_its_recording_on_a_signal_with_a_summary(tmp_path: Path,
                                                                       sig: int) -> None:
    path = tmp_path / "headless.coach"
    out: list[str] = []
    sent, err = _signal_when_recording(
        ["demo", "--headless", "--record", str(path), "--duration", "600"], path, sig, out)
    assert f"stopped by {signal.Signals(sig).name}" in err and "Traceback" not in err
    assert out[0].startswith("scenario calm-anchor: ")  # the summary, as at the end
    assert f"recorded to {path}" in err
    _assert_recorded_until(path, sent)


@pytest.mark.parametrize("sig", SIGNALS, ids=SIGNAL_IDS)
def test_record_closes_on_a_signal_with_a_summary(tmp_path: Path, sig: int) -> None:
    path = tmp_path / "recorded.coach"
    _, err = _signal_when_recording(["record", "--out", str(path), "--duration", "600"],
                                    path, sig)
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"coach record: stopped by {signal.Signals(sig).name}: ")
    with RecordingReader(path) as reader:
        assert reader.closed_cleanly and reader.count() == int(last.split(" events")[0]
                                                               .rsplit(" ", 1)[1])


# ---------------------------------------------------------------------- coach run


def _run_args(*argv: str) -> Any:
    from coach.cli import build_parser

    return build_parser().parse_args(["run", "--a", "A0:9E:1A:00:00:01", *argv])


def test_run_records_by_default_to_the_sessions_folder(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from coach.commands.run import recording_path
    from coach.recording import default_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path = recording_path(_run_args())
    assert path is not None and path.parent == default_dir()
    assert default_dir().is_relative_to(tmp_path)
    assert path.name.endswith("Z.coach")  # a UTC start time
    assert recording_path(_run_args("--no-record")) is None
    assert recording_path(_run_args("--record", str(tmp_path / "x.coach"))) == \
        tmp_path / "x.coach"
    with pytest.raises(SystemExit):  # one or the other
        _run_args("--no-record", "--record", "x.coach")


def test_run_session_records_the_drivers_events_and_states(tmp_path: Path) -> None:
    """``coach run``'s session loop, on simulated straps read by the real drivers."""
    import asyncio

    from coach.clock import VirtualClock
    from coach.commands.demo import build, strap_sources
    from coach.commands.run import run_session

    path = tmp_path / "run.coach"
    clock = VirtualClock()

    async def main() -> None:
        session, world = build(clock, "calm-anchor", 4)
        sources, _ = strap_sources(world, clock, 4)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(30.0), name="sim.world")
            await run_session(session, sources, duration_s=30.0, record=path,
                              settings={"source": "straps"})

    clock.run(main())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with RecordingReader(path) as reader:
        assert reader.closed_cleanly and reader.labels == ("A", "B")
        assert reader.settings == {"source": "straps"}
        assert reader.duration_s == pytest.approx(30.0, abs=0.01)
        assert reader.count(("ecg",)) > 0 and reader.count(("acc",)) > 0
        assert reader.count(("state",)) == pytest.approx(300, abs=2)


def test_run_without_bluetooth_leaves_no_recording(tmp_path: Path) -> None:
    """No Bluetooth: one clear line, exit 3, and no empty recording left behind.

    D-Bus is pointed at a socket that does not exist, so this holds on any Linux machine.
    """
    path = tmp_path / "never.coach"
    env = {**ENV, "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/coach-test-bus"}
    out = subprocess.run([sys.executable, "-m", "coach.cli", "run", "--a", "A0:9E:1A:00:00:01",
                          "--record", str(path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 3, out.stderr[-2000:]
    assert len(out.stderr.strip().splitlines()) == 1 and "Bluetooth" in out.stderr
    assert "Traceback" not in out.stderr
    assert not path.exists()
