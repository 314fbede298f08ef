"""One supervisor per strap: connect, subscribe, decode, reconnect, forever.

:class:`Strap` owns a strap's link through bleak and turns its notifications into
``coach.types`` events in host time. Connections are serialised by one lock per event
loop (BlueZ refuses parallel connects); lost links are retried with jittered
exponential backoff until the consumer stops iterating; a heart-rate stream silent
for ``probe_s`` has its notifications re-armed (BlueZ drops them when the strap's services
change), and a watchdog ends links that stay silent. Garbage notifications are counted in
:attr:`Strap.malformed`, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError

from coach.types import (
    AccChunk,
    EcgChunk,
    HeartRate,
    Label,
    StrapCondition,
    StrapEvent,
    StrapStatus,
)
from drivers import BluetoothUnavailable, MalformedFrame, StrapError, StrapLost, hrs, pmd
from drivers.timesync import BeatDater, DeviceClock

if TYPE_CHECKING:  # drivers import nothing from coach but its types
    from coach.clock import Clock

log = logging.getLogger(__name__)

_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def connect_lock() -> asyncio.Lock:
    """The lock every strap of this event loop holds while it connects."""
    loop = asyncio.get_running_loop()
    lock = _LOCKS.get(loop)
    if lock is None:
        lock = _LOCKS[loop] = asyncio.Lock()
    return lock


async def _wait_out(task: asyncio.Task[Any]) -> None:
    """Wait until ``task`` has ended, even if we are cancelled meanwhile; then pass the
    cancellation on.

    A strap's task ends with its teardown (PMD stopped, link disconnected, bleak's D-Bus
    connection closed). Awaiting it with ``gather`` would cancel it again when our consumer
    is cancelled a second time (a ``TaskGroup`` cancels its tasks once more as it aborts:
    Ctrl-C in ``coach run``), cutting the teardown short and leaving the strap connected
    and streaming. The teardown is bounded (``command_timeout_s`` a step).
    """
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if not task.cancelled():
        task.exception()  # retrieved: it was handed to the consumer through the queue
    if cancelled:
        raise asyncio.CancelledError


MAX_REASON_CHARS = 160
NO_BLUEZ = "org.freedesktop.DBus.Error.ServiceUnknown"  # the system bus has no org.bluez


def one_line(exc: BaseException) -> str:
    """A short one-line reason for an error from bleak, D-Bus or the OS.

    BlueZ's own reasons come first (``le-connection-abort-by-local`` for
    ``org.bluez.Error.Failed``; ``InProgress: In Progress``); errors bleak was not
    meant to raise (a ``KeyError`` from inside its BlueZ backend) say so.
    """
    if isinstance(exc, BleakDBusError):
        short = exc.dbus_error.rsplit(".", 1)[-1]
        details = str(exc.dbus_error_details or "").strip()
        text = details if short == "Failed" and details else (
            f"{short}: {details}" if details else short)
    elif isinstance(exc, TimeoutError):
        text = "timed out"
    elif isinstance(exc, BleakError):  # some carry a reason or a code beside the message
        text = next((a for a in exc.args if isinstance(a, str) and a), type(exc).__name__)
    elif isinstance(exc, OSError | EOFError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"unexpected {type(exc).__name__} from the Bluetooth stack: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def translate_error(exc: BaseException, address: str) -> StrapError:
    """Our exception for any error from bleak or the OS (the boundary of the drivers).

    Every ``Exception`` becomes a :class:`StrapError` with a one-line reason;
    ``CancelledError`` and other ``BaseException`` are never passed here.
    """
    if isinstance(exc, StrapError):
        return exc
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):  # no D-Bus system bus
        return BluetoothUnavailable(
            "Bluetooth is not available: no D-Bus system bus, so no BlueZ "
            "(is bluetoothd running and an adapter present?)")
    if isinstance(exc, BleakDBusError) and exc.dbus_error == NO_BLUEZ:
        return BluetoothUnavailable(
            "Bluetooth is not available: bluetoothd (org.bluez) is not on the system bus")
    if isinstance(exc, BleakBluetoothNotAvailableError | PermissionError):
        return BluetoothUnavailable(f"Bluetooth is not available: {one_line(exc)}")
    if not isinstance(exc, BleakError | OSError | TimeoutError | EOFError):
        log.debug("%s: unexpected error from bleak", address, exc_info=exc)
    return StrapLost(f"{address}: {one_line(exc)}")


@dataclass(frozen=True, slots=True)
class StrapConfig:
    """How a :class:`Strap` behaves. Times in host seconds."""

    use_pmd: bool = True  # stream ECG and ACC when the strap offers Polar PMD
    acc_rate_hz: int = 200
    acc_range_g: int = 8
    connect_timeout_s: float = 15.0
    command_timeout_s: float = 5.0
    probe_s: float = 2.5  # no heart rate (sent each second) for this long: re-arm notifications
    watchdog_s: float = 5.0  # no notification for this long: the link is dead
    poll_s: float = 0.5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 2.0  # short: a strap that is back must stream within seconds


@dataclass(slots=True)
class _Stream:
    fs_hz: float
    factor: float = 1.0


class Strap:
    """Supervisor of one strap; iterate :meth:`events` to run it.

    Parameters
    ----------
    address : str
        Bluetooth address (a UUID on macOS).
    label : str
        Participant label ``A``, ``B`` or ``T``.
    clock : Clock
        Host time; all waiting goes through it.
    backend : type of BaseBleakClient, optional
        bleak backend class; None picks the platform's real one.
    config : StrapConfig
    rng : random.Random, optional
        Source of backoff jitter (seed it for deterministic tests).
    """

    def __init__(self, address: str, label: Label, clock: Clock, *,
                 backend: type[BaseBleakClient] | None = None,
                 config: StrapConfig | None = None, rng: random.Random | None = None) -> None:
        self.address, self.label, self.clock = address, label, clock
        self.backend, self.config = backend, config or StrapConfig()
        self.rng = rng or random.Random()
        self.malformed = 0
        self.received: Counter[str] = Counter()  # intact notifications turned into events
        self.connects = 0
        self.device_clock = DeviceClock()
        self._dater = BeatDater()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._cp: asyncio.Queue[pmd.ControlPointResponse] = asyncio.Queue()
        self._streams: dict[str, _Stream] = {}
        self._early: dict[str, list[tuple[bytes, float]]] = {}  # frames before a start answer
        self._condition: StrapCondition | None = None
        self._battery: int | None = None
        self._last_rx_s = 0.0
        self._last_hr_s = 0.0
        self._probed = False  # notifications re-armed in this silence of the heart rate
        self._subscribed: dict[str, Any] = {}  # characteristic -> callback, to re-arm
        self._link_down = asyncio.Event()
        self._ever_ok = False
        self._silent = False
        self.zero_rr = 0  # RR intervals of 0 sent by the strap, dropped

    # ----------------------------------------------------------------- public
    async def events(self) -> AsyncIterator[StrapEvent]:
        """Run the strap and yield its events until the consumer stops.

        Raises
        ------
        BluetoothUnavailable
            If the host has no usable Bluetooth before the first connection.
        """
        task = asyncio.create_task(self._run(), name=f"coach[{self.label}].strap")
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            task.cancel()
            await _wait_out(task)

    def drain_nowait(self) -> list[StrapEvent]:
        """Events already received but not yet taken (at the end of a session: nothing lost)."""
        items = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not isinstance(item, BaseException):
                items.append(item)
        return items

    # ----------------------------------------------------------------- supervision
    async def _run(self) -> None:
        try:
            await self._supervise()
        except Exception as exc:  # handed to the consumer, never lost in a dead task
            self._queue.put_nowait(exc)
            raise

    async def _supervise(self) -> None:
        attempt = 0  # backoff exponent
        failures, reason = 0, ""  # failed attempts since the strap was last ok, and why
        client: BleakClient | None = None
        while True:
            self._status("connecting", f"attempt {failures + 1}: {reason}" if reason else "")
            try:
                client = BleakClient(self.address, disconnected_callback=self._on_disconnect,
                                     timeout=self.config.connect_timeout_s, backend=self.backend)
                await self._session(client)
            except BluetoothUnavailable as exc:
                if not self._ever_ok:
                    raise
                attempt, failures, reason = attempt + 1, failures + 1, self._reason(exc)
                self._status("lost", reason)
            except StrapError as exc:
                was_ok = self._condition in ("ok", "no-contact") or self._probed  # re-arming
                attempt = 0 if was_ok else attempt + 1
                failures, reason = (0 if was_ok else failures + 1), self._reason(exc)
                self._status("lost", reason)  # reported before the slow teardown
            except Exception as exc:  # BleakClient() itself: the boundary holds there too
                err = translate_error(exc, self.address)
                if isinstance(err, BluetoothUnavailable) and not self._ever_ok:
                    raise err from exc
                attempt, failures, reason = attempt + 1, failures + 1, self._reason(err)
                self._status("lost", reason)
            finally:
                if client is not None:
                    await self._teardown(client)
                client = None
            await self.clock.sleep(self._backoff(attempt))

    def _reason(self, exc: BaseException) -> str:
        return str(exc).removeprefix(f"{self.address}: ")

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        base = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2.0 ** attempt)
        return base * (0.5 + 0.5 * self.rng.random())

    async def _session(self, client: BleakClient) -> None:
        self._link_down = asyncio.Event()
        self._silent = self._probed = False
        try:
            async with connect_lock():
                async with asyncio.timeout(self.config.connect_timeout_s):
                    await client.connect()
            # bleak retries BlueZ's le-connection-abort-by-local inside connect(), reporting
            # each aborted try as a disconnect: only a drop after connect() counts
            self._link_down = asyncio.Event()
            if not client.is_connected:
                raise StrapLost(f"{self.address}: disconnected while connecting")
            self.connects += 1
            await self._arm(client)
            self._ever_ok = True
            self._status("ok")
            await self._watch(client)
        except StrapError:
            raise
        except Exception as exc:  # anything bleak raises, never CancelledError
            raise translate_error(exc, self.address) from exc

    def _on_disconnect(self, _client: BleakClient) -> None:
        self._link_down.set()

    async def _watch(self, client: BleakClient) -> None:
        while not self._link_down.is_set():
            await self.clock.sleep(self.config.poll_s)
            # once re-armed, the heart rate must come back (other streams may not hide it)
            last = self._last_hr_s if self._probed else self._last_rx_s
            silent = self.clock.now() - last
            if silent > self.config.watchdog_s:
                self._silent = True
                raise StrapLost(f"{self.address}: silent for {silent:.1f} s")
            hr_silent = self.clock.now() - self._last_hr_s
            if hr_silent > self.config.probe_s and not self._probed:
                await self._rearm(client, hr_silent)
        raise StrapLost(f"{self.address}: disconnected")

    async def _rearm(self, client: BleakClient, hr_silent: float) -> None:
        """Subscribe again to everything armed: a GATT Service Changed makes BlueZ export
        new, unsubscribed objects, and the streams stop without the link dropping.

        Once per silence of the heart rate; the strap is "connecting" until its next heart
        rate. A subscription that cannot be made (the characteristic is gone) ends the link
        now, and the reconnection resolves the services afresh; a heart rate that stays
        silent is left to the watchdog.
        """
        self._probed = True
        note = f"silent for {hr_silent:.1f} s: re-arming"
        self._status("connecting", note)
        try:
            async with asyncio.timeout(self.config.command_timeout_s):
                for uuid, callback in self._subscribed.items():
                    try:
                        await client.start_notify(uuid, callback)
                    except BleakDBusError as exc:
                        if not exc.dbus_error.endswith(".InProgress"):  # else: still subscribed
                            raise
        except Exception as exc:  # anything bleak raises, never CancelledError
            if self._link_down.is_set():
                raise StrapLost(f"{self.address}: disconnected") from exc
            raise StrapLost(f"{self.address}: {note} failed: {one_line(exc)}") from exc

    async def _teardown(self, client: BleakClient) -> None:
        # Stop PMD first (a strap keeps streaming into a half-open link otherwise), then
        # always disconnect, even when the stop went unanswered on a dead link.
        # A silent link cannot answer a stop; skip it rather than wait for nothing.
        # A stream is forgotten once its stop is answered: frames in flight until then
        # are data like any other.
        kinds = () if self._silent else tuple(self._streams)
        for kind in (*kinds, None):
            try:
                async with asyncio.timeout(self.config.command_timeout_s):
                    if kind is None:  # also on a dropped link: bleak's BlueZ backend
                        await client.disconnect()  # closes its D-Bus connection only here
                    elif client.is_connected:
                        await self._request(client, pmd.build_stop_request(kind))
            except Exception as exc:  # a dead link cannot be stopped politely
                log.debug("%s: teardown: %r", self.address, exc)
            finally:
                self._streams.pop(kind or "", None)
        self._streams.clear()

    # ----------------------------------------------------------------- arming
    async def _arm(self, client: BleakClient) -> None:
        services = client.services
        self._dater.reset()
        self._last_rx_s = self._last_hr_s = self.clock.now()
        self._subscribed = {}
        if services.get_characteristic(hrs.HEART_RATE_MEASUREMENT) is None:
            raise StrapLost(f"{self.address}: no heart-rate service on this device")
        if services.get_characteristic(hrs.BATTERY_LEVEL) is not None:
            try:
                self._battery = hrs.parse_battery_level(
                    await client.read_gatt_char(hrs.BATTERY_LEVEL))
            except MalformedFrame as exc:
                self._count_malformed("battery", exc)
        await self._subscribe(client, hrs.HEART_RATE_MEASUREMENT, self._on_hr)
        if self.config.use_pmd and services.get_service(pmd.PMD_SERVICE) is not None:
            await self._start_pmd(client)

    async def _start_pmd(self, client: BleakClient) -> None:
        self._cp = asyncio.Queue()
        await self._subscribe(client, pmd.PMD_CONTROL, self._on_control)
        await self._subscribe(client, pmd.PMD_DATA, self._on_pmd)
        try:
            features = pmd.parse_features(await client.read_gatt_char(pmd.PMD_CONTROL))
        except MalformedFrame as exc:
            self._count_malformed("features", exc)
            return
        requests = {"ecg": (pmd.build_ecg_start(), pmd.ECG_RATE_HZ),
                    "acc": (pmd.build_acc_start(self.config.acc_rate_hz, self.config.acc_range_g),
                            self.config.acc_rate_hz)}
        for kind, (request, fs_hz) in requests.items():
            if kind not in features:
                continue
            self._early[kind] = []  # frames may stream in before the answer: keep them
            try:
                resp = await self._request(client, request)
                if resp.status == pmd.STATUS_ALREADY_IN_STATE:  # left running by a lost link
                    await self._request(client, pmd.build_stop_request(kind))
                    resp = await self._request(client, request)
            finally:
                early = self._early.pop(kind, [])
            if not resp.ok:
                log.warning("%s: PMD %s refused: %s", self.address, kind, resp.error)
                continue
            factor = pmd.parse_settings(resp.params).get("factor", (1.0,))[0]
            self._streams[kind] = _Stream(float(fs_hz), float(factor))
            for data, arrived in early:
                self._take_pmd(data, arrived)

    async def _subscribe(self, client: BleakClient, uuid: str, callback: Any) -> None:
        await client.start_notify(uuid, callback)
        self._subscribed[uuid] = callback

    async def _request(self, client: BleakClient, request: bytes) -> pmd.ControlPointResponse:
        while not self._cp.empty():  # stale answers of an earlier request
            self._cp.get_nowait()
        await client.write_gatt_char(pmd.PMD_CONTROL, request, response=True)
        async with asyncio.timeout(self.config.command_timeout_s):
            while True:
                resp = await self._cp.get()
                if resp.opcode == request[0]:
                    return resp

    # ----------------------------------------------------------------- notifications
    def _count_malformed(self, what: str, exc: Exception) -> None:
        self.malformed += 1
        n = self.malformed
        # the first few in full, then a line at each power of two from 64: counted, never a flood
        level = logging.WARNING if n <= 3 or (n & (n - 1) == 0 and n >= 64) else logging.DEBUG
        log.log(level, "%s [%s]: malformed %s dropped (%d so far): %s",
                self.address, self.label, what, n, exc)

    def _on_control(self, _char: Any, data: bytearray) -> None:
        if data and data[0] == pmd.FEATURES_HEADER:
            return  # our read of the features, echoed as a notification by BlueZ
        if data and data[0] == pmd.DEVICE_STOPPED:
            log.warning("%s: strap stopped PMD streams %s", self.address, bytes(data[1:]).hex())
            return
        try:
            self._cp.put_nowait(pmd.parse_control_point_response(data))
        except MalformedFrame as exc:
            self._count_malformed("control point", exc)

    def _on_hr(self, _char: Any, data: bytearray) -> None:
        now = self._last_rx_s = self._last_hr_s = self.clock.now()
        if self._probed and self._condition == "connecting":  # re-armed: flowing again
            self._status("ok")
        self._probed = False
        try:
            m = hrs.parse_heart_rate_measurement(data)
        except MalformedFrame as exc:
            self._count_malformed("heart rate", exc)
            return
        rr = tuple(r for r in m.rr_ms if r > 0)
        if len(rr) < len(m.rr_ms):  # an impossible interval: drop it, keep the heart rate
            self.zero_rr += len(m.rr_ms) - len(rr)
            level = logging.WARNING if self.zero_rr <= 3 else logging.DEBUG
            log.log(level, "%s [%s]: RR interval of 0 dropped (%d so far): %s",
                    self.address, self.label, self.zero_rr, bytes(data).hex())
        beats = self._dater.date(rr, now)
        self.received["hr"] += 1
        self._queue.put_nowait(HeartRate(now, self.label, float(m.hr_bpm), rr, beats,
                                         m.contact))
        if m.contact is False and self._condition == "ok":
            self._status("no-contact")
        elif m.contact is not False and self._condition == "no-contact":
            self._status("ok")

    def _on_pmd(self, _char: Any, data: bytearray) -> None:
        now = self._last_rx_s = self.clock.now()
        kind = pmd.MEASUREMENT_KINDS.get(data[0] & 0x3F) if data else None
        if kind in self._early:  # its start is not answered yet: decode it once it is
            self._early[kind].append((bytes(data), now))
            return
        self._take_pmd(data, now)

    def _take_pmd(self, data: bytes | bytearray, now: float) -> None:
        kind = pmd.MEASUREMENT_KINDS.get(data[0] & 0x3F) if data else None
        stream = self._streams.get(kind or "")
        try:
            frame = pmd.decode_frame(data, factor=stream.factor if stream else 1.0)
        except MalformedFrame as exc:
            self._count_malformed("PMD frame", exc)
            return
        if stream is None:
            return
        self.device_clock.observe(frame.timestamp_ns, now)
        n = len(frame.samples)
        t0 = self.device_clock.to_host(frame.timestamp_ns) - (n - 1) / stream.fs_hz
        self.received[frame.kind] += 1
        if frame.kind == "ecg":
            self._queue.put_nowait(EcgChunk(t0, self.label, stream.fs_hz, frame.samples))
        else:
            self._queue.put_nowait(AccChunk(t0, self.label, stream.fs_hz, frame.samples))

    def _status(self, condition: StrapCondition, note: str = "") -> None:
        self._condition = condition
        log.info("%s [%s]: %s %s", self.address, self.label, condition, note)
        self._queue.put_nowait(StrapStatus(self.clock.now(), self.label, condition,
                                           self._battery, note))
