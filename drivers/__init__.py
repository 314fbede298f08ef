"""Bluetooth LE drivers for chest heart-rate straps.

The byte parsers (:mod:`drivers.hrs`, :mod:`drivers.pmd`) and the clock mapping
(:mod:`drivers.timesync`) are pure and import nothing from bleak; the supervisor
(:mod:`drivers.strap`) and scanning (:mod:`drivers.scan`) talk to bleak.

Errors from bleak and the operating system are translated at this boundary into the
exceptions below, so callers never need to know bleak's exception tree.
"""

from __future__ import annotations


class MalformedFrame(ValueError):
    """A notification's bytes do not follow the layout they claim."""


class StrapError(Exception):
    """Base class of every error the drivers raise about a strap or the radio."""


class BluetoothUnavailable(StrapError):
    """No usable Bluetooth stack: no adapter, no D-Bus/BlueZ, or no OS permission."""


class StrapLost(StrapError):
    """A strap could not be reached or its link dropped."""


class PmdCommandError(StrapError):
    """The Polar PMD control point refused a request.

    Attributes
    ----------
    code : int
        The control point's status code (see :data:`drivers.pmd.PMD_ERRORS`).
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


__all__ = [
    "BluetoothUnavailable",
    "MalformedFrame",
    "PmdCommandError",
    "StrapError",
    "StrapLost",
]
