"""Storage per hour of a 60-minute two-strap Polar recording, and how fast it reads back.

Records synthetic chunks at Polar H10 rates and frame sizes (ECG 130 Hz in frames of 73
samples, ACC 200 Hz x 3 in frames of 36, one HR notification a second, per strap A and B,
integer uV / mG as the strap sends them) for a simulated hour, then:

1. the file size (MB/hour), raw events only and with 10 Hz session states;
2. how fast ``replay_sources`` hands every event back on a VirtualClock (the recording
   side of a replay), as a multiple of real time.

The replay through the whole pipeline is measured by ``coach bench`` (``replay_speed_x``),
on simulated people whose ECG has real beats.

Run: ``.venv/bin/python bench/replay_speed.py [--minutes 60]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from coach.clock import VirtualClock
from coach.recording import Recorder, RecordingReader
from coach.replay import replay_sources
from coach.types import AccChunk, EcgChunk, HeartRate

ECG_FRAME, ACC_FRAME = 73, 36


def write_hour(path: Path, minutes: float, states: bool) -> int:
    rng = np.random.default_rng(0)
    end = minutes * 60.0
    events: list[tuple[float, object]] = []
    for label in "AB":
        n_ecg, n_acc = int(end * 130), int(end * 200)
        ecg = np.round(800 * np.sin(np.arange(n_ecg) / 13.0) + rng.normal(0, 30, n_ecg))
        acc = np.round(rng.normal(0, 40, (n_acc, 3)) + np.array([0.0, -1000.0, 50.0]))
        events += [((i + ECG_FRAME) / 130.0, EcgChunk(i / 130.0, label, 130.0,
                                                       ecg[i:i + ECG_FRAME]))
                   for i in range(0, n_ecg - ECG_FRAME, ECG_FRAME)]
        events += [((i + ACC_FRAME) / 200.0, AccChunk(i / 200.0, label, 200.0,
                                                       acc[i:i + ACC_FRAME]))
                   for i in range(0, n_acc - ACC_FRAME, ACC_FRAME)]
        events += [(float(t), HeartRate(float(t), label, 62.0, (968.75,), (float(t),)))
                   for t in range(1, int(end))]
    events.sort(key=lambda e: e[0])
    now = [0.0]
    with Recorder(path, labels=("A", "B"), now=lambda: now[0]) as rec:
        for rx, event in events:
            now[0] = rx
            rec.write(event)
        if states:
            from coach.types import PacerState, PartnerState, SessionState

            for k in range(1, int(end * 10)):
                p = {lab: PartnerState(lab, "ok", 7.1, 1.0, 0.2, 62.0, 40.0, 0.6, "acc", 0.8, 90)
                     for lab in "AB"}
                rec.write_state(SessionState(k / 10, p, "A", PacerState(k / 10, 1.0, 7.0)))
    return len(events)


def replay_rate(path: Path) -> tuple[int, float]:
    with RecordingReader(path) as reader:
        async def drain() -> int:
            streams = replay_sources(reader, clock)
            n = 0
            for stream in streams.values():  # one label after the other is enough here
                async for _ in stream:
                    n += 1
            return n

        clock = VirtualClock()
        t = time.perf_counter()
        n = clock.run(drain())
        return n, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0)
    args = ap.parse_args()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for states in (False, True):
            path = Path(tmp) / f"s{int(states)}.coach"
            t = time.perf_counter()
            n = write_hour(path, args.minutes, states)
            key = "with_states" if states else "raw"
            out[f"{key}_write_s"] = round(time.perf_counter() - t, 2)
            out[f"{key}_mb_per_hour"] = round(path.stat().st_size / 1e6 * 60 / args.minutes, 2)
        out["events"] = n
        n, dt = replay_rate(Path(tmp) / "s0.coach")
        out["replay_sources_s"] = round(dt, 2)
        out["replay_sources_x_realtime"] = round(args.minutes * 60 / dt)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
