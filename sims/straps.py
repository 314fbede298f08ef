"""Simulated chest straps, served through a bleak backend with the real GATT bytes.

A :class:`SimRadio` holds simulated straps and hands out bleak backend classes
(:attr:`SimRadio.client_backend`, :attr:`SimRadio.scanner_backend`); the real driver
(``drivers.strap.Strap``) runs against them unchanged. Each strap serves Heart Rate
(0x180D/0x2A37, several RR per notification), Battery (0x180F/0x2A19) and, unless
disabled, Polar PMD (control point write + indicate, data notify, raw and delta
frames). All timing goes through the injected clock, so a session runs in virtual
time. Faults: link drops, silent links, lost and malformed notifications, contact
loss, clock offset and drift, straps without PMD.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from coach.clock import Clock
from coach.types import AccChunk, EcgChunk
from drivers import hrs, pmd

DEVICE_EPOCH_S = 26 * 365.25 * 86400.0  # strap clocks read ~2026 (Polar epoch 2000-01-01)
ECG_PER_FRAME = 73  # H10 at MTU 232: 73 x 3 bytes + 10 header = 229
ACC_PER_FRAME = 36  # 36 x 6 bytes + 10 header = 226
TICK_S = 0.05  # how often a strap samples its wearer
CONNECT_S = 0.3
NOT_FOUND_S = 1.0  # a strap that is off: the connect attempt fails after this long
POLAR_COMPANY_ID = 0x006B
ACC_FACTOR = 1.0


# ----------------------------------------------------------------- encoders
def rr_units(rr_ms: float) -> int:
    """An RR interval in the 1/1024 s units of 0x2A37 (rounded)."""
    return round(rr_ms * hrs.RR_UNITS_PER_S / 1000.0)


def encode_heart_rate_measurement(hr_bpm: int, rr_ms: tuple[float, ...] = (),
                                  contact: bool | None = None,
                                  energy_kj: int | None = None) -> bytes:
    """A Heart Rate Measurement value, the shortest layout that holds the fields."""
    flags = hrs.FLAG_HR_UINT16 if hr_bpm > 255 else 0
    if contact is not None:
        flags |= hrs.FLAG_CONTACT_SUPPORTED | (hrs.FLAG_CONTACT_DETECTED if contact else 0)
    if energy_kj is not None:
        flags |= hrs.FLAG_ENERGY
    if rr_ms:
        flags |= hrs.FLAG_RR
    out = bytes([flags]) + int(hr_bpm).to_bytes(2 if hr_bpm > 255 else 1, "little")
    if energy_kj is not None:
        out += int(energy_kj).to_bytes(2, "little")
    return out + b"".join(rr_units(r).to_bytes(2, "little") for r in rr_ms)


def _header(kind: str, timestamp_ns: int, frame_type: int) -> bytes:
    return bytes([pmd.MEASUREMENT_TYPES[kind]]) + int(timestamp_ns).to_bytes(8, "little") + \
        bytes([frame_type])


def _ints(values: np.ndarray, size: int) -> bytes:
    vals = np.asarray(values, dtype=np.int64).ravel() & ((1 << 8 * size) - 1)
    shifts = np.arange(size, dtype=np.int64) * 8
    return ((vals[:, None] >> shifts) & 0xFF).astype(np.uint8).tobytes()


def encode_ecg_frame(timestamp_ns: int, ecg_uv: np.ndarray) -> bytes:
    """A raw ECG frame (type 0): 3-byte signed microvolts, as the H10 sends."""
    return _header("ecg", timestamp_ns, 0) + _ints(np.rint(ecg_uv), 3)


def encode_delta_samples(samples: np.ndarray, resolution_bits: int = 16,
                         max_count: int = 255) -> bytes:
    """Reference sample and delta blocks; each block uses the narrowest bit width (>= 2)."""
    s = np.asarray(samples, dtype=np.int64)
    out = _ints(s[0], math.ceil(resolution_bits / 8))
    deltas = np.diff(s, axis=0)
    for start in range(0, len(deltas), max_count):
        block = deltas[start : start + max_count]
        peak = int(max(block.max(), -block.min() - 1, 1))
        width = max(2, peak.bit_length() + 1)
        bits = (block.ravel()[:, None] >> np.arange(width)) & 1
        packed = np.packbits(bits.ravel().astype(np.uint8), bitorder="little")
        out += bytes([width, len(block)]) + packed.tobytes()
    return out


def encode_acc_frame(timestamp_ns: int, acc_mg: np.ndarray, *, compressed: bool = False) -> bytes:
    """An ACC frame: raw type 1 (int16 mG, H10) or delta type 1 (0x81, Verity Sense)."""
    acc = np.rint(acc_mg).astype(np.int64)
    if compressed:
        return _header("acc", timestamp_ns, 0x81) + encode_delta_samples(acc)
    return _header("acc", timestamp_ns, 1) + _ints(acc, 2)


def control_response(opcode: int, mtype: int, status: int, params: bytes = b"") -> bytes:
    """A control point indication: ``F0 op type status more params``."""
    head = bytes([pmd.RESPONSE_CODE, opcode, mtype, status])
    return head + (b"\x00" + params if status == pmd.STATUS_OK else b"")


SETTINGS = {  # what a settings query answers, H10-like
    "ecg": bytes.fromhex("00018200" "01010e00"),
    "acc": bytes.fromhex("0004190032006400c800" "01011000" "0203020004000800"),
}


# ----------------------------------------------------------------- specification
class SignalSource(Protocol):
    """Returns what a strap senses from the previous call up to ``t_end_s``.

    The result has ``acc`` (AccChunk, mG), ``ecg`` (EcgChunk, uV), ``beat_t_s`` and
    ``rr_ms`` (arrays), like ``sims.person.Person.advance``.
    """

    def __call__(self, t_end_s: float) -> Any: ...


@dataclass(frozen=True, slots=True)
class SimFaults:
    """Faults on demand; times in host seconds of the simulation clock."""

    disconnects: tuple[tuple[float, float], ...] = ()  # (at_s, down_s): link drops, strap off
    silences: tuple[float, ...] = ()  # the link open at this time stops notifying
    contact_loss: tuple[tuple[float, float], ...] = ()  # (at_s, duration_s)
    drop_fraction: float = 0.0  # notifications lost on air
    malformed_fraction: float = 0.0  # notifications truncated on air


@dataclass(frozen=True, slots=True)
class SimStrapSpec:
    """One simulated strap. ``has_pmd=False`` makes a plain HR strap (Garmin, Wahoo)."""

    address: str
    name: str
    signal_source: SignalSource
    has_pmd: bool = True
    clock_offset_s: float = 0.0
    drift_ppm: float = 0.0
    faults: SimFaults = field(default_factory=SimFaults)
    latency_s: tuple[float, float] = (0.005, 0.060)
    battery_pct: int = 87
    acc_compressed: bool = False
    hr_interval_s: float = 1.0
    seed: int = 0


def shifted(faults: SimFaults, t0_s: float) -> SimFaults:
    """The same faults with their times counted from ``t0_s``."""
    return replace(
        faults,
        disconnects=tuple((t0_s + at, d) for at, d in faults.disconnects),
        silences=tuple(t0_s + at for at in faults.silences),
        contact_loss=tuple((t0_s + at, d) for at, d in faults.contact_loss),
    )


def chaos_faults(rng: np.random.Generator, t0_s: float, horizon_s: float) -> SimFaults:
    """Random faults for a strap over ``horizon_s`` seconds from ``t0_s``.

    Disconnects about every 8 minutes (off 3-40 s), a silent link about every 30
    minutes, contact lost about every 12 minutes (5-30 s), 1 % malformed and 0.5 %
    lost notifications.
    """
    def times(mean_gap_s: float) -> list[float]:
        out, t = [], t0_s
        while (t := t + float(rng.exponential(mean_gap_s)) + 20.0) < t0_s + horizon_s:
            out.append(t)
        return out

    return SimFaults(
        disconnects=tuple((t, float(rng.uniform(3.0, 40.0))) for t in times(480.0)),
        silences=tuple(times(1800.0)),
        contact_loss=tuple((t, float(rng.uniform(5.0, 30.0))) for t in times(720.0)),
        drop_fraction=0.005,
        malformed_fraction=0.01,
    )


# ----------------------------------------------------------------- the strap itself
class SimStrap:
    """A simulated peripheral; it outlives connections, as a strap outlives its links."""

    def __init__(self, spec: SimStrapSpec, clock: Clock) -> None:
        self.spec, self.clock = spec, clock
        self.rng = np.random.default_rng(spec.seed)
        self.client: SimBleakClient | None = None
        self.delivered: Counter[str] = Counter()  # intact notifications handed to a client
        self.corrupted: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.fired: set[tuple[str, int]] = set()
        self.t_source = -math.inf  # the wearer has been simulated up to here
        self.features = frozenset({"ecg", "acc"} if spec.has_pmd else ())

    def device_ns(self, t_s: float) -> int:
        """The strap's clock at host time ``t_s``: offset and drifting."""
        s = self.spec
        device_s = DEVICE_EPOCH_S + s.clock_offset_s + t_s * (1 + s.drift_ppm * 1e-6)
        return round(device_s * 1e9)

    def available(self, t_s: float) -> bool:
        """False while a disconnect fault keeps the strap switched off."""
        return not any(at <= t_s < at + down for at, down in self.spec.faults.disconnects)

    def in_contact(self, t_s: float) -> bool:
        return not any(at <= t_s < at + d for at, d in self.spec.faults.contact_loss)

    def due(self, kind: str, t_s: float) -> bool:
        """Whether a fault of this kind fires now (each fires once)."""
        f = self.spec.faults
        times = [a for a, _ in f.disconnects] if kind == "disconnect" else list(f.silences)
        for i, at in enumerate(times):
            if at <= t_s and (kind, i) not in self.fired:
                self.fired.add((kind, i))
                return True
        return False

    def gatt(self) -> BleakGATTServiceCollection:
        """The strap's services, with the handles a real H10 uses roughly."""
        svcs = BleakGATTServiceCollection()
        layout = [(hrs.HEART_RATE_SERVICE, [(hrs.HEART_RATE_MEASUREMENT, ["notify"])]),
                  (hrs.BATTERY_SERVICE, [(hrs.BATTERY_LEVEL, ["read", "notify"])])]
        if self.spec.has_pmd:
            layout.append((pmd.PMD_SERVICE, [(pmd.PMD_CONTROL, ["read", "write", "indicate"]),
                                             (pmd.PMD_DATA, ["notify"])]))
        handle = 10
        for svc_uuid, chars in layout:
            svc = BleakGATTService(None, handle, svc_uuid)
            svcs.add_service(svc)
            for char_uuid, props in chars:
                handle += 2
                svcs.add_characteristic(
                    BleakGATTCharacteristic(None, handle, char_uuid, props, lambda: 229, svc))
            handle += 10
        return svcs

    def control(self, data: bytes, streams: set[str]) -> bytes:
        """Answer a control point write; starts and stops ``streams``."""
        if len(data) < 2:
            return control_response(data[0] if data else 0, 0, 4)
        op, mtype = data[0], data[1]
        kind = pmd.MEASUREMENT_KINDS.get(mtype, "")
        if kind not in self.features:
            return control_response(op, mtype, 2)
        if op == pmd.OP_GET_SETTINGS:
            return control_response(op, mtype, 0, SETTINGS[kind])
        if op == pmd.OP_START:
            if kind in streams:
                return control_response(op, mtype, pmd.STATUS_ALREADY_IN_STATE)
            streams.add(kind)
            factor = b"\x05\x01" + struct.pack("<f", ACC_FACTOR) if kind == "acc" else b""
            return control_response(op, mtype, 0, factor)
        if op == pmd.OP_STOP:
            streams.discard(kind)
            return control_response(op, mtype, 0)
        return control_response(op, mtype, 1)


class SimBleakClient(BaseBleakClient):
    """bleak backend for a :class:`SimRadio`; use ``radio.client_backend``."""

    radio: SimRadio

    def __init__(self, address_or_ble_device: Any, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, timeout=kwargs.get("timeout", 10.0),
                         disconnected_callback=kwargs.get("disconnected_callback"))
        self._strap: SimStrap | None = None
        self._connected = self._silent = False
        self._subs: dict[str, Any] = {}
        self._streams: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox: asyncio.Queue[tuple[float, str, bytes, str, bool]] = asyncio.Queue()
        self._last_at = 0.0
        self._pending = _Pending()

    name = property(lambda self: self._strap.spec.name if self._strap else self.address)
    mtu_size = property(lambda self: 232)
    is_connected = property(lambda self: self._connected)

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        clock = self.radio.clock
        strap = self.radio.straps.get(self.address.upper())
        await clock.sleep(CONNECT_S)
        if strap is None or not strap.available(clock.now()) or strap.client is not None:
            await clock.sleep(NOT_FOUND_S)
            raise BleakDeviceNotFoundError(self.address, f"{self.address} not found")
        self._strap, strap.client, self._connected = strap, self, True
        self.services = strap.gatt()
        label = strap.spec.name
        self._tasks = [asyncio.create_task(self._produce(), name=f"sim[{label}].produce"),
                       asyncio.create_task(self._deliver(), name=f"sim[{label}].deliver")]

    async def disconnect(self) -> None:
        self._drop()

    def _drop(self) -> None:
        if not self._connected:
            return
        self._connected = False
        if self._strap is not None:
            self._strap.client = None
        current = asyncio.current_task()
        for t in self._tasks:
            if t is not current:
                t.cancel()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise BleakError("pairing is not simulated")

    async def unpair(self) -> None:
        raise BleakError("pairing is not simulated")

    async def read_gatt_char(self, char: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        strap = self._link()
        if char.uuid == hrs.BATTERY_LEVEL:
            return bytearray([strap.spec.battery_pct])
        if char.uuid == pmd.PMD_CONTROL:
            bits = sum(1 << pmd.MEASUREMENT_TYPES[k] for k in strap.features)
            return bytearray([pmd.FEATURES_HEADER]) + bits.to_bytes(2, "little")
        raise BleakError(f"{char.uuid} is not readable")

    async def read_gatt_descriptor(self, desc: Any, **kwargs: Any) -> bytearray:
        raise BleakError("no descriptors are simulated")

    async def write_gatt_char(self, char: BleakGATTCharacteristic, data: Any,
                              response: bool) -> None:
        strap = self._link()
        if char.uuid != pmd.PMD_CONTROL:
            raise BleakError(f"{char.uuid} is not writable")
        answer = strap.control(bytes(data), self._streams)
        self._send(pmd.PMD_CONTROL, answer, "cp", self.radio.clock.now(), faults=False)

    async def write_gatt_descriptor(self, desc: Any, data: Any) -> None:
        raise BleakError("no descriptors are simulated")

    async def start_notify(self, char: BleakGATTCharacteristic, callback: Any,
                           **kwargs: Any) -> None:
        self._link()
        self._subs[char.uuid] = callback

    async def stop_notify(self, char: BleakGATTCharacteristic) -> None:
        self._subs.pop(char.uuid, None)

    def _link(self) -> SimStrap:
        if not self._connected or self._strap is None:
            raise BleakError("Not connected")
        return self._strap

    # ------------------------------------------------------------- air
    def _send(self, uuid: str, data: bytes, kind: str, t_sent: float,
              faults: bool = True) -> None:
        strap = self._link()
        if self._silent:
            return
        intact = True
        if faults and strap.rng.random() < strap.spec.faults.drop_fraction:
            strap.dropped[kind] += 1
            return
        if faults and strap.rng.random() < strap.spec.faults.malformed_fraction:
            data, intact = _corrupt(data, kind, strap.rng), False
        lo, hi = strap.spec.latency_s
        self._last_at = max(self._last_at, t_sent + strap.rng.uniform(lo, hi),
                            self.radio.clock.now())
        self._outbox.put_nowait((self._last_at, uuid, data, kind, intact))

    async def _deliver(self) -> None:
        clock = self.radio.clock
        while True:
            at, uuid, data, kind, intact = await self._outbox.get()
            await clock.sleep_until(at)
            callback = self._subs.get(uuid)
            if (not self._connected or self._silent or callback is None or self._strap is None
                    or self.radio.frozen):
                continue
            (self._strap.delivered if intact else self._strap.corrupted)[kind] += 1
            callback(bytearray(data))

    async def _produce(self) -> None:
        strap, clock = self._link(), self.radio.clock
        next_hr = clock.now() + strap.spec.hr_interval_s
        self._pending.pull(strap, clock.now(), keep=False)
        while self._connected:
            await clock.sleep(TICK_S)
            now = clock.now()
            if strap.due("disconnect", now):
                self._drop()
                return
            if strap.due("silence", now):
                self._silent = True
            self._pending.pull(strap, now, keep=True)
            self._flush_pmd(strap)
            if now >= next_hr:
                self._send_hr(strap, now)
                next_hr += strap.spec.hr_interval_s

    def _flush_pmd(self, strap: SimStrap) -> None:
        p = self._pending
        for kind, per_frame in (("ecg", ECG_PER_FRAME), ("acc", ACC_PER_FRAME)):
            if kind not in self._streams:
                p.clear(kind)
                continue
            while len(p.t[kind]) >= per_frame:
                t, x = p.take(kind, per_frame)
                ts = strap.device_ns(t[-1])
                data = (encode_ecg_frame(ts, x) if kind == "ecg" else
                        encode_acc_frame(ts, x, compressed=strap.spec.acc_compressed))
                self._send(pmd.PMD_DATA, data, kind, t[-1])

    def _send_hr(self, strap: SimStrap, now: float) -> None:
        beats, self._pending.beats = self._pending.beats, []
        contact = strap.in_contact(now)
        rr = tuple(r for t, r in beats if strap.in_contact(t)) if contact else ()
        hr = round(60000.0 / rr[-1]) if rr else (self._pending.hr if contact else 0)
        self._pending.hr = hr
        for i in range(0, max(len(rr), 1), 9):  # at most 9 RR fit a 23-byte MTU
            data = encode_heart_rate_measurement(hr, rr[i : i + 9], contact)
            self._send(hrs.HEART_RATE_MEASUREMENT, data, "hr", now)


@dataclass(slots=True)
class _Pending:
    """Samples and beats a strap has sensed but not yet sent."""

    t: dict[str, np.ndarray] = field(
        default_factory=lambda: {"ecg": np.empty(0), "acc": np.empty(0)})
    x: dict[str, np.ndarray] = field(
        default_factory=lambda: {"ecg": np.empty(0), "acc": np.empty((0, 3))})
    beats: list[tuple[float, float]] = field(default_factory=list)
    hr: int = 0

    def pull(self, strap: SimStrap, now: float, keep: bool) -> None:
        if now <= strap.t_source:
            return
        sig = strap.spec.signal_source(now)
        strap.t_source = now
        if not keep or sig is None:
            return
        for kind, chunk in (("ecg", sig.ecg), ("acc", sig.acc)):
            assert isinstance(chunk, EcgChunk | AccChunk)
            vals = chunk.ecg_uv if isinstance(chunk, EcgChunk) else chunk.acc_mg
            t = chunk.t_s + np.arange(len(vals)) / chunk.fs_hz
            self.t[kind] = np.concatenate([self.t[kind], t])
            self.x[kind] = np.concatenate([self.x[kind], vals])
        self.beats += [(float(t), float(r)) for t, r in zip(sig.beat_t_s, sig.rr_ms, strict=True)]

    def take(self, kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        t, x = self.t[kind][:n], self.x[kind][:n]
        self.t[kind], self.x[kind] = self.t[kind][n:], self.x[kind][n:]
        return t, x

    def clear(self, kind: str | None = None) -> None:
        for k in [kind] if kind else ["ecg", "acc"]:
            self.t[k], self.x[k] = self.t[k][:0], self.x[k][:0]


def _corrupt(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    # Always detectably broken: an HR value without its heart rate, a PMD frame cut
    # inside its header.
    if kind == "hr":
        return data[:1]
    return data[: int(rng.integers(0, pmd.HEADER_BYTES))]


class SimBleakScanner(BaseBleakScanner):
    """bleak scanner backend for a :class:`SimRadio`; use ``radio.scanner_backend``."""

    radio: SimRadio

    def __init__(self, detection_callback: Any = None, service_uuids: Any = None,
                 scanning_mode: str = "active", **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        self.seen_devices = {}
        now = self.radio.clock.now()
        for address, strap in self.radio.straps.items():
            if not strap.available(now) or strap.client is not None:
                continue
            uuids = [hrs.HEART_RATE_SERVICE] + ([pmd.PMD_SERVICE] if strap.spec.has_pmd else [])
            adv = AdvertisementData(strap.spec.name, {POLAR_COMPANY_ID: b"\x00"}, {}, uuids,
                                    None, -60, ())
            if self.is_allowed_uuid(adv.service_uuids):
                device = self.create_or_update_device(address, address, strap.spec.name, None, adv)
                self.call_detection_callbacks(device, adv)

    async def stop(self) -> None:
        return None


class SimRadio:
    """The air around simulated straps: gives bleak backend classes bound to them."""

    def __init__(self, clock: Clock, specs: list[SimStrapSpec] | tuple[SimStrapSpec, ...]) -> None:
        self.clock = clock
        self.straps = {s.address.upper(): SimStrap(s, clock) for s in specs}
        self.client_backend: type[SimBleakClient] = type(
            "SimBleakClient", (SimBleakClient,), {"radio": self})
        self.scanner_backend: type[SimBleakScanner] = type(
            "SimBleakScanner", (SimBleakScanner,), {"radio": self})

    frozen = False  # True: nothing goes over the air any more (the session has ended)

    def freeze(self) -> None:
        """Stop all deliveries, so counts taken now stay exact."""
        self.frozen = True

    def strap(self, address: str) -> SimStrap:
        """The simulated strap at ``address``."""
        return self.straps[address.upper()]
