"""Bluetooth Heart Rate Service (0x180D) and Battery Service (0x180F) byte layouts.

References
----------
Bluetooth SIG, Heart Rate Service 1.0 and GATT Specification Supplement, section
"Heart Rate Measurement" (0x2A37): flags byte, uint8/uint16 heart rate, optional
energy expended (uint16, kJ) and RR intervals (uint16, 1/1024 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from drivers import MalformedFrame

HEART_RATE_SERVICE: Final = "0000180d-0000-1000-8000-00805f9b34fb"
HEART_RATE_MEASUREMENT: Final = "00002a37-0000-1000-8000-00805f9b34fb"
BATTERY_SERVICE: Final = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL: Final = "00002a19-0000-1000-8000-00805f9b34fb"

FLAG_HR_UINT16: Final = 0x01
FLAG_CONTACT_DETECTED: Final = 0x02
FLAG_CONTACT_SUPPORTED: Final = 0x04
FLAG_ENERGY: Final = 0x08
FLAG_RR: Final = 0x10

RR_UNITS_PER_S: Final = 1024  # RR intervals count 1/1024 s


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One decoded 0x2A37 notification.

    Attributes
    ----------
    hr_bpm : int
        Heart rate, beats per minute.
    rr_ms : tuple of float
        RR intervals in milliseconds (exact multiples of 1000/1024 ms), oldest first.
    contact : bool or None
        Skin contact, or None when the strap does not report it.
    energy_kj : int or None
        Energy expended since the last reset, or None when absent.
    """

    hr_bpm: int
    rr_ms: tuple[float, ...] = ()
    contact: bool | None = None
    energy_kj: int | None = None


def rr_ms_from_units(units: int) -> float:
    """RR interval in ms from its 1/1024 s count (exact in binary floating point)."""
    return units * 1000.0 / RR_UNITS_PER_S


def parse_heart_rate_measurement(data: bytes | bytearray) -> HeartRateMeasurement:
    """Decode a Heart Rate Measurement (0x2A37) notification.

    Parameters
    ----------
    data : bytes
        The characteristic value as notified.

    Returns
    -------
    HeartRateMeasurement

    Raises
    ------
    MalformedFrame
        If the value is shorter than its flags announce, an RR field is cut in half,
        or the RR flag is set but no RR interval follows (Nordic's reading of the
        specification: the flag promises at least one). Reserved flag bits 5-7 are
        ignored, as the specification asks of receivers.

    Notes
    -----
    RR intervals are reported as sent, 0 included (as the Polar BLE SDK and
    blevalueparser do): an impossible interval is for the caller to drop
    (:class:`drivers.strap.Strap` counts and drops it), not a reason to lose the
    frame's heart rate.
    """
    buf = bytes(data)
    if not buf:
        raise MalformedFrame("empty heart rate measurement")
    flags = buf[0]
    pos = 1
    hr_size = 2 if flags & FLAG_HR_UINT16 else 1
    if len(buf) < pos + hr_size:
        raise MalformedFrame(f"heart rate measurement too short: {buf.hex()}")
    hr = int.from_bytes(buf[pos : pos + hr_size], "little")
    pos += hr_size
    contact = bool(flags & FLAG_CONTACT_DETECTED) if flags & FLAG_CONTACT_SUPPORTED else None
    energy = None
    if flags & FLAG_ENERGY:
        if len(buf) < pos + 2:
            raise MalformedFrame(f"energy field missing: {buf.hex()}")
        energy = int.from_bytes(buf[pos : pos + 2], "little")
        pos += 2
    rr: tuple[float, ...] = ()
    if flags & FLAG_RR:
        rest = buf[pos:]
        if len(rest) % 2:
            raise MalformedFrame(f"odd number of RR bytes: {buf.hex()}")
        if not rest:
            raise MalformedFrame(f"RR flag set but no RR interval: {buf.hex()}")
        units = [int.from_bytes(rest[i : i + 2], "little") for i in range(0, len(rest), 2)]
        rr = tuple(rr_ms_from_units(u) for u in units)
    elif len(buf) > pos:
        raise MalformedFrame(f"{len(buf) - pos} unexpected trailing bytes: {buf.hex()}")
    return HeartRateMeasurement(hr_bpm=hr, rr_ms=rr, contact=contact, energy_kj=energy)


def parse_battery_level(data: bytes | bytearray) -> int:
    """Battery Level (0x2A19): one uint8, percent 0-100.

    Raises
    ------
    MalformedFrame
        If the value is not one byte in 0..100.
    """
    if len(data) != 1 or data[0] > 100:
        raise MalformedFrame(f"bad battery level: {bytes(data).hex()}")
    return int(data[0])
