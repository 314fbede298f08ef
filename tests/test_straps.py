"""The strap supervisor against simulated straps served through a bleak backend.

The simulated straps send the real GATT bytes (Bluetooth HRS 0x2A37 with RR in 1/1024 s;
Polar PMD frames and control point exchanges as in polarofficial/polar-ble-sdk
``BlePMDClient.kt``); the driver runs unchanged on ``BleakClient(..., backend=...)``.
Everything runs on :class:`coach.clock.VirtualClock`: no wall-clock sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from bleak import BleakScanner
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from coach.clock import VirtualClock
from coach.types import AccChunk, EcgChunk, HeartRate, StrapEvent, StrapStatus
from drivers import BluetoothUnavailable, StrapLost
from drivers.scan import scan
from drivers.strap import Strap, StrapConfig, one_line, translate_error
from sims.straps import SimFaults, SimRadio, SimStrapSpec


class Wearer:
    """Integer-valued signals on exact grids; RR representable in 1/1024 s units.

    ECG sample n is unique for n < 2**22, ACC row m is unique too, so a received
    stream can be located in the sent one exactly.
    """

    def __init__(self, seed: int = 0) -> None:
        self.t = 0.0
        self.rng = np.random.default_rng(seed)
        self.beat_t, self.beats, self.rr = 0.3, [], []

    @staticmethod
    def ecg(n: np.ndarray) -> np.ndarray:
        return (n * 7919) % 1_000_003 - 500_000

    @staticmethod
    def acc(m: np.ndarray) -> np.ndarray:
        return np.stack([m % 16000 - 8000, -(m // 7 % 8000), 1000 + m % 37], axis=1)

    def __call__(self, t_end: float) -> SimpleNamespace:
        n = np.arange(round(self.t * 130), round(t_end * 130))
        m = np.arange(round(self.t * 200), round(t_end * 200))
        bt, rr = [], []
        while True:
            units = int(self.rng.integers(650, 1150))
            if self.beat_t + units / 1024 > t_end:
                break
            self.beat_t += units / 1024
            bt.append(self.beat_t)
            rr.append(units * 1000 / 1024)
        self.beats += bt
        self.rr += rr
        self.t = t_end
        return SimpleNamespace(
            ecg=EcgChunk((n[0] if len(n) else 0) / 130, "A", 130.0, self.ecg(n)),
            acc=AccChunk((m[0] if len(m) else 0) / 200, "A", 200.0, self.acc(m)),
            beat_t_s=np.array(bt), rr_ms=np.array(rr))


async def collect(strap: Strap, clock: VirtualClock, until_s: float) -> list[StrapEvent]:
    out: list[StrapEvent] = []
    async for ev in strap.events():
        out.append(ev)
        if clock.now() >= until_s:
            break
    return out


def run_one(spec: SimStrapSpec, until_s: float, **kw: object) -> tuple[list[StrapEvent], Strap,
                                                                       SimRadio]:
    clock = VirtualClock()

    async def main() -> tuple[list[StrapEvent], Strap, SimRadio]:
        radio = SimRadio(clock, [spec])
        strap = Strap(spec.address, "A", clock, backend=radio.client_backend, **kw)  # type: ignore[arg-type]
        return await collect(strap, clock, until_s), strap, radio

    return clock.run(main())


def _locate(sent: np.ndarray, got: np.ndarray) -> int:
    hit = (sent == got[0]).all(axis=-1) if sent.ndim > 1 else sent == got[0]
    return int(np.flatnonzero(hit)[0])


@pytest.mark.parametrize("compressed", [False, True])
def test_round_trip_is_exact(compressed: bool) -> None:
    """ECG uV, ACC mG (raw H10 frames or delta frames) and RR ms come back exactly."""
    wearer = Wearer(1)
    spec = SimStrapSpec("AA:00:00:00:00:01", "Polar H10 1", wearer, acc_compressed=compressed,
                        hr_interval_s=2.5)
    events, strap, radio = run_one(spec, 60.0)
    ecg = np.concatenate([e.ecg_uv for e in events if isinstance(e, EcgChunk)])
    acc = np.concatenate([e.acc_mg for e in events if isinstance(e, AccChunk)])
    hrs = [e for e in events if isinstance(e, HeartRate)]
    n0 = _locate(wearer.ecg(np.arange(200 * 130)), ecg)
    assert np.array_equal(ecg, wearer.ecg(np.arange(n0, n0 + len(ecg))))
    m0 = _locate(wearer.acc(np.arange(200 * 200)), acc)
    assert np.array_equal(acc, wearer.acc(np.arange(m0, m0 + len(acc))))
    rr = [r for e in hrs for r in e.rr_ms]
    k = wearer.rr.index(rr[0])
    assert rr == wearer.rr[k : k + len(rr)] and len(rr) > 40
    assert max(len(e.rr_ms) for e in hrs) >= 3  # several RR per notification
    assert len(ecg) > 55 * 130 and len(acc) > 55 * 200
    delivered = radio.strap(spec.address).delivered - Counter(cp=2)
    assert strap.malformed == 0 and strap.received == delivered
    ecg_chunks = [e for e in events if isinstance(e, EcgChunk)]
    assert all(b.t_s > a.t_s for a, b in itertools.pairwise(ecg_chunks))


def test_frames_in_flight_when_the_session_stops_are_kept() -> None:
    """The consumer stops while frames are on a slow link: the strap stops its streams,
    and every frame that arrives until each stop is answered is an event (taken at the
    end with ``drain_nowait``), none dropped uncounted."""
    wearer = Wearer(3)
    spec = SimStrapSpec("AA:00:00:00:00:03", "Polar H10 3", wearer, latency_s=(0.3, 0.5))
    clock = VirtualClock()

    async def main() -> tuple[list[StrapEvent], Strap, SimRadio]:
        radio = SimRadio(clock, [spec])
        strap = Strap(spec.address, "A", clock, backend=radio.client_backend)  # type: ignore[arg-type]
        got: list[StrapEvent] = []
        async with contextlib.aclosing(strap.events()) as events:
            async for ev in events:
                got.append(ev)
                if clock.now() >= 30.0:
                    break
        return got + strap.drain_nowait(), strap, radio

    events, strap, radio = clock.run(main())
    delivered = radio.strap(spec.address).delivered - Counter(cp=radio.strap(spec.address)
                                                              .delivered["cp"])
    assert strap.malformed == 0 and strap.received == delivered
    acc = np.concatenate([e.acc_mg for e in events if isinstance(e, AccChunk)])
    m0 = _locate(wearer.acc(np.arange(200 * 40)), acc)
    assert np.array_equal(acc, wearer.acc(np.arange(m0, m0 + len(acc))))  # no gap, no tail lost
    assert sum(delivered.values()) > 200


def test_plain_heart_rate_strap_gives_hr_only() -> None:
    spec = SimStrapSpec("AA:00:00:00:00:02", "TICKR 2", Wearer(2), has_pmd=False)
    events, _, _ = run_one(spec, 30.0)
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds["HeartRate"] >= 28 and kinds["EcgChunk"] == kinds["AccChunk"] == 0
    beats = [t for e in events if isinstance(e, HeartRate) for t in e.beat_t_s]
    assert np.all(np.diff(beats) > 0)
    assert all(t <= e.t_s for e in events if isinstance(e, HeartRate) for t in e.beat_t_s)


def test_faults_are_reported_and_survived() -> None:
    """3 drops (10 s off each), 1% malformed, 20 s contact loss, one silent link."""
    faults = SimFaults(disconnects=((40.0, 10.0), (110.0, 10.0), (230.0, 10.0)),
                       silences=(170.0,), contact_loss=((70.0, 20.0),),
                       malformed_fraction=0.01)
    spec = SimStrapSpec("AA:00:00:00:00:03", "Polar H10 3", Wearer(3), faults=faults, seed=3)
    events, strap, radio = run_one(spec, 300.0, config=StrapConfig(), rng=random.Random(3))
    status = [e for e in events if isinstance(e, StrapStatus)]
    lost = [s for s in status if s.condition == "lost"]
    assert sum("disconnected" in s.note for s in lost) == 3
    assert sum("silent" in s.note for s in lost) == 1
    oks = [s.t_s for s in status if s.condition == "ok"]
    for back_s in (50.0, 120.0, 240.0):
        assert any(back_s <= t <= back_s + 5.0 for t in oks), (back_s, oks)
    silent_end = next(s.t_s for s in lost if "silent" in s.note)
    assert any(silent_end <= t <= silent_end + 5.0 for t in oks)
    no_contact = [s.t_s for s in status if s.condition == "no-contact"]
    assert len(no_contact) == 1 and 70.0 <= no_contact[0] <= 72.0
    assert any(90.0 <= t <= 93.0 for t in oks)
    sim = radio.strap(spec.address)
    assert strap.malformed == sum(sim.corrupted.values()) > 0
    delivered = sim.delivered - Counter(cp=sim.delivered["cp"])
    assert strap.received == delivered  # every intact frame became an event
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds["HeartRate"] == delivered["hr"] and kinds["EcgChunk"] == delivered["ecg"]
    assert kinds["AccChunk"] == delivered["acc"]
    assert strap.connects == 5


def test_scanner_backend_lists_straps() -> None:
    clock = VirtualClock()

    async def main() -> list:
        radio = SimRadio(clock, [SimStrapSpec("AA:00:00:00:00:04", "Polar H10 4", Wearer()),
                                 SimStrapSpec("AA:00:00:00:00:05", "HRM-Pro", Wearer(),
                                              has_pmd=False)])
        assert len(await BleakScanner.discover(1.0, backend=radio.scanner_backend)) == 2
        return await scan(1.0, backend=radio.scanner_backend)

    found = clock.run(main())
    assert [(f.name, f.has_pmd) for f in found] == [("Polar H10 4", True), ("HRM-Pro", False)]


def test_no_bluetooth_stack_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without D-Bus, bleak's BlueZ backend raises FileNotFoundError: we translate it.

    The system bus is pointed at a socket that does not exist, so the test means the
    same on a machine with a working BlueZ.
    """
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/coach-test-bus")
    clock = VirtualClock()

    async def main() -> None:
        strap = Strap("AA:00:00:00:00:06", "A", clock)  # the platform's real backend
        async with asyncio.timeout(30):
            async for _ in strap.events():
                pass

    with pytest.raises(BluetoothUnavailable, match="Bluetooth"):
        clock.run(main())


def _broken(radio: SimRadio, where: str, exc: Exception) -> type:
    """The simulated backend, raising ``exc`` from ``connect`` or ``start_notify``."""

    class Broken(radio.client_backend):  # type: ignore[name-defined, misc]
        async def connect(self, pair: bool = False, **kwargs: object) -> None:
            if where == "connect":
                raise exc
            await super().connect(pair, **kwargs)

        async def start_notify(self, char: object, callback: object, **kwargs: object) -> None:
            if where == "notify":
                raise exc
            await super().start_notify(char, callback, **kwargs)

    return Broken


@pytest.mark.parametrize(("where", "exc", "reason"), [
    ("connect", KeyError("Roles"), "unexpected KeyError from the Bluetooth stack: 'Roles'"),
    ("notify", AttributeError("'NoneType' object has no attribute 'obj'"),
     "unexpected AttributeError from the Bluetooth stack: 'NoneType' object has no "
     "attribute 'obj'"),
])
def test_any_error_from_the_backend_becomes_a_status_reason(where: str, exc: Exception,
                                                            reason: str) -> None:
    """Not only BleakError: whatever the backend raises is a lost link with a one-line
    reason, retried with a growing attempt count, never an exception out of the driver."""
    clock = VirtualClock()
    spec = SimStrapSpec("AA:00:00:00:00:07", "Polar H10 7", Wearer(7))

    async def main() -> list[StrapStatus]:
        radio = SimRadio(clock, [spec])
        strap = Strap(spec.address, "A", clock, backend=_broken(radio, where, exc),
                      rng=random.Random(0))
        out: list[StrapStatus] = []
        async with contextlib.aclosing(strap.events()) as events:
            async for ev in events:
                if isinstance(ev, StrapStatus):
                    out.append(ev)
                if len(out) == 7:
                    return out
        return out

    statuses = [(s.condition, s.note) for s in clock.run(main())]
    assert statuses == [("connecting", ""), ("lost", reason),
                        ("connecting", f"attempt 2: {reason}"), ("lost", reason),
                        ("connecting", f"attempt 3: {reason}"), ("lost", reason),
                        ("connecting", f"attempt 4: {reason}")]


def test_cancelling_a_strap_is_never_swallowed() -> None:
    """A consumer cancelled while bleak is connecting: the cancellation goes through."""
    clock = VirtualClock()
    spec = SimStrapSpec("AA:00:00:00:00:08", "Polar H10 8", Wearer(8))

    async def main() -> bool:
        radio = SimRadio(clock, [spec])
        gate = asyncio.Event()

        class Hanging(radio.client_backend):  # type: ignore[name-defined, misc]
            async def connect(self, pair: bool = False, **kwargs: object) -> None:
                gate.set()
                await asyncio.Event().wait()

        strap = Strap(spec.address, "A", clock, backend=Hanging)

        async def consume() -> None:
            async for _ in strap.events():
                pass

        task = asyncio.create_task(consume())
        await gate.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert clock.run(main())


def test_scan_turns_any_backend_error_into_a_strap_error() -> None:
    from drivers import StrapError


    class BrokenScanner(SimRadio(VirtualClock(), []).scanner_backend):  # type: ignore[misc]
        async def start(self) -> None:
            raise KeyError("Roles")

    with pytest.raises(StrapError) as err:
        asyncio.run(scan(0.1, backend=BrokenScanner))
    assert str(err.value) == "scan: unexpected KeyError from the Bluetooth stack: 'Roles'"


@pytest.mark.parametrize(("exc", "reason"), [
    (BleakDBusError("org.bluez.Error.Failed", ["le-connection-abort-by-local"]),
     "le-connection-abort-by-local"),
    (BleakDBusError("org.bluez.Error.InProgress", ["In Progress"]), "InProgress: In Progress"),
    (BleakDBusError("org.bluez.Error.NotReady", []), "NotReady"),
    (BleakGATTProtocolError(BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED),
     "GATT Protocol Error: Write Not Permitted"),
    (BleakDeviceNotFoundError("AA:BB", "Device with address AA:BB was not found."),
     "Device with address AA:BB was not found."),
    (TimeoutError(), "timed out"),
    (KeyError("Roles"), "unexpected KeyError from the Bluetooth stack: 'Roles'"),
    (RuntimeError("line one\nline two"),
     "unexpected RuntimeError from the Bluetooth stack: line one line two"),
])
def test_reasons_are_one_short_line(exc: Exception, reason: str) -> None:
    assert one_line(exc) == reason
    lost = translate_error(exc, "AA:BB")
    assert isinstance(lost, StrapLost) and str(lost) == f"AA:BB: {reason}"


@pytest.mark.parametrize("exc", [
    FileNotFoundError(2, "No such file"), ConnectionRefusedError(111, "Connection refused"),
    BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", ["no org.bluez"]),
    BleakBluetoothNotAvailableError("No powered Bluetooth adapters found.",
                                    BleakBluetoothNotAvailableReason.POWERED_OFF),
])
def test_no_bluetooth_is_said_once(exc: Exception) -> None:
    err = translate_error(exc, "scan")
    assert isinstance(err, BluetoothUnavailable)
    assert str(err).startswith("Bluetooth is not available: ") and "\n" not in str(err)
