"""A simulated BlueZ on a private D-Bus: what bleak's BlueZ backend talks to on Linux.

:class:`BlueZSim` owns the name ``org.bluez`` on a bus started by :class:`DBusDaemon`
and serves the objects bluetoothd serves (``doc/org.bluez.Adapter.rst``,
``org.bluez.Device.rst``, ``org.bluez.GattService.rst``, ``org.bluez.GattCharacteristic.rst``
of BlueZ; ObjectManager at ``/``): one adapter ``hci0``, a Device1 per strap while
discovery sees it advertising (RSSI, UUIDs, ManufacturerData), Connect/Disconnect with
``Connected`` and ``ServicesResolved``, GattService1/GattCharacteristic1 objects once
connected, ReadValue/WriteValue, StartNotify/StopNotify with ``Value`` PropertiesChanged.

It is bluetoothd only: the air is :class:`sims.straps.SimRadio`. Each D-Bus connection
drives one :class:`sims.straps.SimBleakClient` link, so the bytes, their timing and the
air's faults (link drops, silences, lost and malformed notifications) are the ones the
simulated bleak backend serves, not written again here. The faults of bluetoothd itself
are methods of :class:`BlueZSim`: Connect failing (``org.bluez.Error.Failed`` with a
BlueZ reason such as ``le-connection-abort-by-local``, ``InProgress``), link loss with the
strap gone for a while, the adapter powered off, services changed, slow service
resolution, a device without the Heart Rate service, an adapter without ``Roles``.

Written without ``from __future__ import annotations``: dbus-fast reads the annotations.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from bleak.exc import BleakError
from dbus_fast import BusType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusInt16,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
    DBusUInt32,
)
from dbus_fast.constants import PropertyAccess
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

from drivers import hrs, pmd
from sims.straps import POLAR_COMPANY_ID, SimBleakClient, SimRadio

DBUS_DAEMON = os.environ.get("COACH_DBUS_DAEMON", "/usr/bin/dbus-daemon")
ADAPTER_PATH = "/org/bluez/hci0"
ADVERTISE_EVERY_S = 0.1  # real seconds between advertising reports while discovering
DBusStrings = Annotated[list[str], DBusSignature("as")]
DBusPaths = Annotated[list[str], DBusSignature("ao")]
DBusManufacturer = Annotated[dict[int, Variant], DBusSignature("a{qv}")]

FAILED = "org.bluez.Error.Failed"
IN_PROGRESS = "org.bluez.Error.InProgress"
NOT_READY = "org.bluez.Error.NotReady"


def device_path(address: str) -> str:
    """BlueZ's object path of a device: ``/org/bluez/hci0/dev_AA_BB_...``."""
    return f"{ADAPTER_PATH}/dev_{address.upper().replace(':', '_')}"


# ------------------------------------------------------------------ the bus


class DBusDaemon:
    """A private ``dbus-daemon`` on a Unix socket; killed by PID.

    Point bleak at it with ``DBUS_SYSTEM_BUS_ADDRESS`` (dbus-fast reads that variable
    for the system bus, the bus bleak's BlueZ backend opens).
    """

    def __init__(self) -> None:
        if not Path(DBUS_DAEMON).is_file():
            raise FileNotFoundError(f"dbus-daemon not found at {DBUS_DAEMON}: "
                                    "apt-get install dbus-daemon (scripts/setup.sh does)")
        # a short private dir: a Unix socket path must fit in 108 bytes
        self.dir = Path(tempfile.mkdtemp(prefix="coach-dbus-"))
        self.socket = self.dir / "bus"
        self.address = f"unix:path={self.socket}"
        (self.dir / "bus.conf").write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            "<busconfig><type>session</type>"
            f"<listen>{self.address}</listen><auth>EXTERNAL</auth>"
            '<policy context="default"><allow user="*"/><allow own="*"/>'
            '<allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>'
            "</policy></busconfig>\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 5.0) -> None:
        with (self.dir / "daemon.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [DBUS_DAEMON, f"--config-file={self.dir / 'bus.conf'}", "--nofork", "--nopidfile"],
                stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self._accepts():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "daemon.log").read_text(errors="replace")
                self.kill()
                raise RuntimeError(f"dbus-daemon did not start: {log}")
            time.sleep(0.01)

    def _accepts(self) -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(self.socket))
            except OSError:
                return False
        return True

    def kill(self) -> None:
        forget_bleak_buses()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The environment of a ``coach`` subprocess that must use this bus as the system bus."""
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}


def forget_bleak_buses() -> None:
    """Close the D-Bus connections bleak's BlueZ manager keeps per event loop.

    bleak keeps one for the life of a loop and closes those of dead loops only when a new
    manager is made; the last test's would otherwise be left to the garbage collector.
    """
    from bleak.backends.bluezdbus import manager

    instances = manager._global_instances
    for loop in list(instances):
        bus = instances.pop(loop)._bus
        if bus is not None:
            with contextlib.suppress(RuntimeError):  # its loop is closed: see bleak
                bus._finalize(None)


# ------------------------------------------------------------------ objects


class Adapter(ServiceInterface):
    """``org.bluez.Adapter1`` of an older BlueZ: no ``Roles`` property."""

    def __init__(self, sim: "BlueZSim") -> None:
        super().__init__("org.bluez.Adapter1")
        self.sim = sim
        self.powered = True
        self.discovering = 0  # discovery sessions open

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return "00:1A:7D:DA:71:13"

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:
        return "coach-sim"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return "coach-sim"

    @dbus_property(access=PropertyAccess.READ)
    def Class(self) -> DBusUInt32:
        return 0

    @dbus_property()
    def Powered(self) -> DBusBool:
        return self.powered

    @Powered.setter
    def Powered(self, value: DBusBool) -> None:
        self.sim.set_powered(value)

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Pairable(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> DBusBool:
        return bool(self.discovering)

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> DBusStrings:
        return []

    @dbus_method()
    def SetDiscoveryFilter(self, properties: DBusDict) -> None:
        if not self.powered:
            raise DBusError(NOT_READY, "Resource Not Ready")

    @dbus_method()
    def StartDiscovery(self) -> None:
        if not self.powered:
            raise DBusError(NOT_READY, "Resource Not Ready")
        self.discovering += 1
        if self.discovering == 1:
            self.emit_properties_changed({"Discovering": True})
            self.sim.advertise()

    @dbus_method()
    def StopDiscovery(self) -> None:
        if not self.powered:
            raise DBusError(NOT_READY, "Resource Not Ready")
        if not self.discovering:
            raise DBusError(FAILED, "No discovery started")
        self.discovering -= 1
        if not self.discovering:
            self.emit_properties_changed({"Discovering": False})

    @dbus_method()
    def GetDiscoveryFilters(self) -> DBusStrings:
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable",
                "Pattern"]

    @dbus_method()
    def RemoveDevice(self, device: DBusObjectPath) -> None:
        self.sim.remove_device(device)


class AdapterWithRoles(Adapter):
    """``org.bluez.Adapter1`` of BlueZ 5.56 and later, with ``Roles``."""

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> DBusStrings:
        return ["central", "peripheral"]


class GattService(ServiceInterface):
    """``org.bluez.GattService1``."""

    def __init__(self, uuid: str, device: str) -> None:
        super().__init__("org.bluez.GattService1")
        self.uuid, self.device = uuid, device

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> DBusObjectPath:
        return self.device

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> DBusPaths:
        return []


class GattCharacteristic(ServiceInterface):
    """``org.bluez.GattCharacteristic1``, backed by a characteristic of the radio link."""

    def __init__(self, device: "Device", service: str, char: Any) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self.dev, self.service, self.char = device, service, char
        self.value = b""
        self.notifying = False

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return str(self.char.uuid)

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> DBusObjectPath:
        return self.service

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> DBusBool:
        return self.notifying

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> DBusStrings:
        return list(self.char.properties)

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> DBusUInt16:
        return 232

    def _set_value(self, data: bytes | bytearray) -> None:
        self.value = bytes(data)
        self.emit_properties_changed({"Value": self.value})

    @dbus_method()
    async def ReadValue(self, options: DBusDict) -> DBusBytes:
        link = self.dev.link_or_fail()
        data = bytes(await link.read_gatt_char(self.char))
        self._set_value(data)  # BlueZ updates Value (and says so) on every read
        return data

    @dbus_method()
    async def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        link = self.dev.link_or_fail()
        self.dev.writes += 1
        await asyncio.sleep(self.dev.faults.write_s)
        await link.write_gatt_char(self.char, bytes(value), response=True)

    @dbus_method()
    async def StartNotify(self) -> None:
        link = self.dev.link_or_fail()
        if self.notifying:
            return
        await link.start_notify(self.char, self._set_value)
        self.notifying = True
        self.emit_properties_changed({"Notifying": True})

    @dbus_method()
    async def StopNotify(self) -> None:
        if not self.notifying:
            raise DBusError(FAILED, "No notify session started")
        link = self.dev.link_or_fail()
        await link.stop_notify(self.char)
        self.notifying = False
        self.emit_properties_changed({"Notifying": False})


@dataclass
class DeviceFaults:
    """bluetoothd-side faults of one device, set by :class:`BlueZSim` methods."""

    connect_errors: list[tuple[str, str]] = field(default_factory=list)  # next Connects
    resolve_s: float = 0.05  # real seconds from Connected to ServicesResolved
    write_s: float = 0.0  # real seconds a WriteValue takes before it reaches the strap
    hidden_services: set[str] = field(default_factory=set)  # service UUIDs not served
    off_until: float = 0.0  # radio clock: the strap is gone (link loss) until then


class Device(ServiceInterface):
    """``org.bluez.Device1`` of one simulated strap."""

    def __init__(self, sim: "BlueZSim", address: str) -> None:
        super().__init__("org.bluez.Device1")
        self.sim, self.address = sim, address.upper()
        self.strap = sim.radio.strap(address)
        self.path = device_path(address)
        self.faults = sim.faults.setdefault(self.address, DeviceFaults())
        self.rssi = -60
        self.connected = self.resolved = self.connecting = False
        self.link: SimBleakClient | None = None
        self.gatt_paths: list[tuple[str, ServiceInterface]] = []
        self.writes = 0  # WriteValue calls received
        self._resolver: asyncio.Task[None] | None = None

    # -- properties (doc/org.bluez.Device.rst)
    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> DBusStr:
        return self.address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> DBusStr:
        return self.strap.spec.name

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> DBusStr:
        return self.strap.spec.name

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> DBusObjectPath:
        return ADAPTER_PATH

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Bonded(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Trusted(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def LegacyPairing(self) -> DBusBool:
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> DBusBool:
        return self.connected

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> DBusBool:
        return self.resolved

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> DBusInt16:
        return self.rssi

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> DBusStrings:
        uuids = [hrs.HEART_RATE_SERVICE] + ([pmd.PMD_SERVICE] if self.strap.spec.has_pmd else [])
        return [u for u in uuids if u not in self.faults.hidden_services]

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> DBusManufacturer:
        if not self.strap.spec.has_pmd:
            return {}
        return {POLAR_COMPANY_ID: Variant("ay", b"\x3f\x00\x00")}

    # -- methods
    @dbus_method()
    async def Connect(self) -> None:
        if not self.sim.adapter.powered:
            raise DBusError(NOT_READY, "Resource Not Ready")
        if self.connected:
            return
        if self.connecting:
            raise DBusError(IN_PROGRESS, "In Progress")
        if self.faults.connect_errors:
            name, message = self.faults.connect_errors.pop(0)
            if message == "le-connection-abort-by-local":
                # bluetoothd did connect, then the controller gave up: Connected flickers
                self._set({"Connected": True})
                await asyncio.sleep(0.02)
                self._set({"Connected": False})
            raise DBusError(name, message)
        self.connecting = True
        try:
            link = self.sim.radio.client_backend(self.address,
                                                 disconnected_callback=self._on_link_lost)
            if self.sim.is_off(self.address):
                await asyncio.sleep(0.5)
                raise DBusError(FAILED, "le-connection-timeout")
            try:
                await link.connect()
            except BleakError:
                raise DBusError(FAILED, "le-connection-timeout") from None
            self.link = link
            self._set({"Connected": True})
            self._resolver = asyncio.create_task(self._resolve(), name="bluez-sim.resolve")
        finally:
            self.connecting = False

    @dbus_method()
    async def Disconnect(self) -> None:
        link = self.link
        if link is None:
            if self.connected:  # a flicker or a half-open link: just drop it
                self._gone()
            return
        await link.disconnect()  # the link's callback tears the objects down

    @dbus_method()
    def Pair(self) -> None:
        raise DBusError("org.bluez.Error.AuthenticationFailed", "pairing is not simulated")

    # -- machinery
    def _set(self, changed: dict[str, Any]) -> None:
        for name, value in changed.items():
            setattr(self, {"Connected": "connected", "ServicesResolved": "resolved",
                           "RSSI": "rssi"}[name], value)
        self.emit_properties_changed(changed)

    def link_or_fail(self) -> SimBleakClient:
        if self.link is None or not self.link.is_connected:
            raise DBusError(FAILED, "Not connected")
        return self.link

    async def _resolve(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < self.faults.resolve_s:  # the fault may be lifted meanwhile
            await asyncio.sleep(min(0.02, self.faults.resolve_s))
        self.export_gatt()
        self._set({"ServicesResolved": True})

    def export_gatt(self, moved: int = 0) -> None:
        """Services and characteristics of the link as D-Bus objects (InterfacesAdded),
        their object paths ``moved`` handles further on."""
        assert self.link is not None and self.link.services is not None
        for svc in self.link.services:
            if svc.uuid in self.faults.hidden_services:
                continue
            spath = f"{self.path}/service{svc.handle + moved:04x}"
            gs = GattService(svc.uuid, self.path)
            self.sim.bus.export(spath, gs)
            self.gatt_paths.append((spath, gs))
            for char in svc.characteristics:
                cpath = f"{spath}/char{char.handle + moved:04x}"
                gc = GattCharacteristic(self, spath, char)
                self.sim.bus.export(cpath, gc)
                self.gatt_paths.append((cpath, gc))

    def unexport_gatt(self) -> list[GattCharacteristic]:
        """Remove the GATT objects (InterfacesRemoved); returns the characteristics."""
        chars = [iface for _, iface in self.gatt_paths if isinstance(iface, GattCharacteristic)]
        for path, iface in reversed(self.gatt_paths):
            self.sim.bus.unexport(path, iface)
        self.gatt_paths.clear()
        return chars

    def _on_link_lost(self) -> None:  # SimBleakClient's disconnected callback
        self._gone()

    def _gone(self) -> None:
        if self._resolver is not None:
            self._resolver.cancel()
            self._resolver = None
        self.link = None
        self.unexport_gatt()
        if self.resolved:
            self._set({"ServicesResolved": False})
        if self.connected:
            self._set({"Connected": False})


# ------------------------------------------------------------------ the daemon


class BlueZSim:
    """bluetoothd for the straps of ``radio``, on the bus at ``address``.

    Parameters
    ----------
    radio : SimRadio
        The simulated straps and their air (bytes, timing, air faults).
    roles : bool
        Whether the adapter has the ``Roles`` property (BlueZ >= 5.56).
    """

    def __init__(self, radio: SimRadio, *, roles: bool = True) -> None:
        self.radio = radio
        self.faults: dict[str, DeviceFaults] = {}
        self.adapter: Adapter = AdapterWithRoles(self) if roles else Adapter(self)
        self.devices: dict[str, Device] = {}
        self.bus: MessageBus
        self._advertiser: asyncio.Task[None] | None = None

    async def start(self, bus_address: str) -> None:
        self.bus = await MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM).connect()
        self.bus.export(ADAPTER_PATH, self.adapter)
        await self.bus.request_name("org.bluez")

    async def stop(self) -> None:
        if self._advertiser is not None:
            self._advertiser.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._advertiser
        for dev in self.devices.values():
            if dev.link is not None:
                await dev.link.disconnect()
        self.bus.disconnect()
        with contextlib.suppress(Exception):
            await self.bus.wait_for_disconnect()

    # -- advertising
    def is_off(self, address: str) -> bool:
        strap = self.radio.strap(address)
        now = self.radio.clock.now()
        return not strap.available(now) or now < self.faults.get(
            address.upper(), DeviceFaults()).off_until

    def advertise(self) -> None:
        if self._advertiser is None or self._advertiser.done():
            self._advertiser = asyncio.create_task(self._advertise(), name="bluez-sim.adv")

    async def _advertise(self) -> None:
        k = 0
        while self.adapter.discovering and self.adapter.powered:
            for address in self.radio.straps:
                dev = self.devices.get(address)
                if self.is_off(address) or (dev is not None and dev.connected):
                    continue
                if dev is None:
                    dev = self.devices[address] = Device(self, address)
                    self.bus.export(dev.path, dev)  # InterfacesAdded: bleak sees it advertise
                else:
                    dev._set({"RSSI": -58 - (k + hash(address)) % 5})
            k += 1
            await asyncio.sleep(ADVERTISE_EVERY_S)

    def remove_device(self, path: str) -> None:
        for address, dev in list(self.devices.items()):
            if dev.path == path:
                dev._gone()
                self.bus.unexport(path, dev)
                del self.devices[address]
                return
        raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")

    # -- faults on demand
    def device_faults(self, address: str) -> DeviceFaults:
        return self.faults.setdefault(address.upper(), DeviceFaults())

    def fail_connects(self, address: str, times: int, name: str = FAILED,
                      message: str = "le-connection-abort-by-local") -> None:
        """The next ``times`` Connect calls of ``address`` fail with this BlueZ error."""
        self.device_faults(address).connect_errors.extend([(name, message)] * times)

    def lose_link(self, address: str, off_s: float) -> None:
        """Drop the link now; the strap is gone (no advertising, no connect) for ``off_s``."""
        faults = self.device_faults(address)
        faults.off_until = self.radio.clock.now() + off_s
        dev = self.devices.get(address.upper())
        if dev is not None and dev.link is not None:
            asyncio.get_running_loop().create_task(dev.link.disconnect())

    def set_powered(self, on: bool) -> None:
        """Adapter powered on or off (off drops every link, as bluetoothd does)."""
        if on == self.adapter.powered:
            return
        self.adapter.powered = on
        if not on:
            self.adapter.discovering = 0
            for dev in self.devices.values():
                if dev.link is not None:
                    asyncio.get_running_loop().create_task(dev.link.disconnect())
                elif dev.connected:
                    dev._gone()
            self.adapter.emit_properties_changed({"Powered": False, "Discovering": False})
        else:
            self.adapter.emit_properties_changed({"Powered": True})

    def change_services(self, address: str, moved: int = 0) -> None:
        """A Service Changed indication: the GATT objects go and come back, unsubscribed
        (at new object paths if ``moved``: the handles moved by that much)."""
        dev = self.devices[address.upper()]
        link = dev.link
        if link is None:
            return
        for char in dev.unexport_gatt():
            if char.notifying:
                asyncio.get_running_loop().create_task(link.stop_notify(char.char))
        dev.export_gatt(moved)

    def notify(self, address: str, uuid: str, data: bytes) -> None:
        """Notify ``data`` on a characteristic now, as if the strap had sent these bytes."""
        dev = self.devices[address.upper()]
        for _, iface in dev.gatt_paths:
            if isinstance(iface, GattCharacteristic) and iface.char.uuid == uuid:
                iface._set_value(data)
                return
        raise KeyError(uuid)
