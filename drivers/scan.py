"""Finding heart-rate straps nearby."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bleak import BleakScanner
from bleak.backends.scanner import BaseBleakScanner

from drivers import StrapError
from drivers.hrs import HEART_RATE_SERVICE
from drivers.pmd import PMD_SERVICE
from drivers.strap import translate_error

log = logging.getLogger(__name__)

POLAR_COMPANY_ID = 0x006B


@dataclass(frozen=True, slots=True)
class FoundStrap:
    """A strap seen advertising."""

    address: str
    name: str
    rssi_dbm: int
    has_pmd: bool  # Polar Measurement Data advertised (ECG/ACC likely)

    @property
    def description(self) -> str:
        kind = "Polar PMD (HR, RR, ECG, ACC)" if self.has_pmd else "heart rate (HR, RR)"
        return f"{self.address}  {self.name or '?':<24} {self.rssi_dbm:>4} dBm  {kind}"


async def scan(timeout_s: float = 5.0, *,
               backend: type[BaseBleakScanner] | None = None) -> list[FoundStrap]:
    """Heart-rate straps advertising nearby, strongest first.

    Raises
    ------
    BluetoothUnavailable
        No adapter, no BlueZ/D-Bus, or no permission to use Bluetooth.
    StrapError
        Any other failure of the scan.
    """
    try:
        found = await BleakScanner.discover(timeout_s, return_adv=True, backend=backend)
    except Exception as exc:  # anything bleak raises, never CancelledError
        raise translate_error(exc, "scan") from exc
    out = []
    for device, adv in found.values():
        uuids = {u.lower() for u in adv.service_uuids}
        polar = POLAR_COMPANY_ID in adv.manufacturer_data
        if HEART_RATE_SERVICE in uuids or PMD_SERVICE in uuids or polar:
            name = device.name or adv.local_name or ""
            out.append(FoundStrap(device.address, name, adv.rssi,
                                  PMD_SERVICE in uuids or name.startswith("Polar H10")))
    log.info("scan found %d straps", len(out))
    return sorted(out, key=lambda f: -f.rssi_dbm)


__all__ = ["FoundStrap", "StrapError", "scan"]
