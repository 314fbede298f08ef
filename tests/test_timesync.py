"""Device clock to host time: min-latency fit of offset and drift; RR back-dating.

Method: S. B. Moon, P. Skelly, D. Towsley, "Estimation and removal of clock skew from
network delay measurements", INFOCOM 1999 (the line under all (device time, arrival)
points, closest to them on average). Polar timestamps: ns since 2000-01-01 of the last
sample of a frame (polar-ble-sdk ``PmdTimeStampUtils.kt``).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from coach.clock import VirtualClock
from coach.types import AccChunk, EcgChunk
from drivers.strap import Strap
from drivers.timesync import BeatDater, DeviceClock
from sims.straps import SimRadio, SimStrapSpec


def _device_ns(t: float, offset_s: float, ppm: float) -> int:
    return round((8.2e8 + offset_s + t * (1 + ppm * 1e-6)) * 1e9)


def test_two_straps_agree_within_10_ms_after_a_minute() -> None:
    rng = np.random.default_rng(7)
    straps = [(0.0, 50.0), (3.7, -50.0)]  # clocks seconds apart, drifting +-50 ppm
    clocks = [DeviceClock(), DeviceClock()]
    for (offset, ppm), sync in zip(straps, clocks, strict=True):
        for t in np.arange(0.0, 60.0, 0.18):  # a frame's last sample, host time
            sync.observe(_device_ns(t, offset, ppm), t + rng.uniform(0.005, 0.060))
    for t in (30.0, 59.0, 61.0):  # also just beyond the data: live use extrapolates
        est = [s.to_host(_device_ns(t, o, p)) for s, (o, p) in zip(clocks, straps, strict=True)]
        assert abs(est[0] - est[1]) < 0.010
        assert all(-0.001 < e - t < 0.015 for e in est)  # late by about the min latency


def test_clock_jump_restarts_the_fit() -> None:
    sync = DeviceClock()
    for t in np.arange(0.0, 10.0, 0.5):
        sync.observe(_device_ns(t, 0, 0), t + 0.01)
    sync.observe(_device_ns(10.0, -3600, 0), 10.01)  # the strap reset its clock
    assert sync.resets == 1
    assert abs(sync.to_host(_device_ns(10.0, -3600, 0)) - 10.01) < 1e-6


def test_beats_are_back_dated_and_monotonic() -> None:
    rng = np.random.default_rng(1)
    rr_units = rng.integers(700, 1100, 400)
    rr = rr_units * 1000 / 1024
    beats = 1.0 + np.cumsum(rr) / 1000
    dater, dated, truth = BeatDater(), [], []
    for t_note in np.arange(2.0, beats[-1], 1.0):  # 1 Hz notifications, BLE latency
        sel = (beats <= t_note) & (beats > t_note - 1.0)
        if 150 < t_note < 154:
            continue  # three lost notifications: their beats never arrive
        got = dater.date(tuple(rr[sel]), t_note + rng.uniform(0.005, 0.06))
        dated += got
        truth += list(beats[sel])
    d, tr = np.array(dated), np.array(truth)
    assert np.all(np.diff(d) > 0)
    err = d - tr
    assert np.median(np.abs(err[20:])) < 0.1
    assert np.all(np.abs(err[len(err) // 2 :]) < 0.15)  # re-anchored after the lost beats


class _Wearer:
    """Synthetic signals on exact sample grids (ECG 130 Hz, ACC 200 Hz, beats ~1 Hz)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self, t_end: float) -> SimpleNamespace:
        n0, n1 = round(self.t * 130), round(t_end * 130)
        m0, m1 = round(self.t * 200), round(t_end * 200)
        b0, b1 = int(self.t), int(t_end)
        self.t = t_end
        acc = np.tile([0.0, 0.0, 1000.0], (m1 - m0, 1))
        return SimpleNamespace(
            ecg=EcgChunk(n0 / 130, "A", 130.0, np.arange(n0, n1) % 400),
            acc=AccChunk(m0 / 200, "A", 200.0, acc),
            beat_t_s=np.arange(b0 + 1, b1 + 1, dtype=float), rr_ms=np.full(b1 - b0, 1000.0))


def test_two_simulated_straps_line_up_end_to_end() -> None:
    """Two sim straps (offset 2.5 s apart, -50/+50 ppm, 5-60 ms latency) through the driver."""

    async def main(clock: VirtualClock) -> list[float]:
        specs = [SimStrapSpec("AA:01", "Polar H10 1", _Wearer(), clock_offset_s=0.0,
                              drift_ppm=-50, seed=1),
                 SimStrapSpec("AA:02", "Polar H10 2", _Wearer(), clock_offset_s=2.5,
                              drift_ppm=50, seed=2)]
        radio = SimRadio(clock, specs)
        straps = [Strap(s.address, "A", clock, backend=radio.client_backend) for s in specs]

        async def drain(strap: Strap) -> None:
            async for _ in strap.events():
                if clock.now() > 65:
                    return

        import asyncio
        async with asyncio.TaskGroup() as tg:
            for s in straps:
                tg.create_task(drain(s))
        return [st.device_clock.to_host(radio.strap(s.address).device_ns(60.0))
                for st, s in zip(straps, specs, strict=True)]

    clock = VirtualClock()
    a, b = clock.run(main(clock))
    assert abs(a - b) < 0.010
    assert abs(a - 60.0) < 0.015 and abs(b - 60.0) < 0.015
