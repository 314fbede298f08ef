"""Heart Rate Measurement (0x2A37) parsing.

Source: Bluetooth SIG Heart Rate Service 1.0 / GATT Specification Supplement,
"Heart Rate Measurement": flags bit0 uint16 HR, bits1-2 sensor contact (bit2 supported,
bit1 detected), bit3 energy expended (uint16 kJ), bit4 RR intervals (uint16, 1/1024 s).
"""

from __future__ import annotations

import itertools
from contextlib import suppress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import MalformedFrame
from drivers.hrs import parse_battery_level, parse_heart_rate_measurement
from sims.straps import encode_heart_rate_measurement


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination(flags: int) -> None:
    hr = 300 if flags & 1 else 72
    body = bytes([flags]) + hr.to_bytes(2 if flags & 1 else 1, "little")
    if flags & 0x08:
        body += (1234).to_bytes(2, "little")
    if flags & 0x10:
        body += (1024).to_bytes(2, "little") + (512).to_bytes(2, "little")
    m = parse_heart_rate_measurement(body)
    assert m.hr_bpm == hr
    assert m.energy_kj == (1234 if flags & 0x08 else None)
    assert m.rr_ms == ((1000.0, 500.0) if flags & 0x10 else ())
    expected_contact = bool(flags & 0x02) if flags & 0x04 else None
    assert m.contact is expected_contact


def test_reserved_flag_bits_are_ignored() -> None:
    assert parse_heart_rate_measurement(bytes([0xE0, 60])).hr_bpm == 60


def test_polar_h10_style_notification() -> None:
    """H10 sends flags 0x16: uint8 HR, contact supported+detected, RR present."""
    m = parse_heart_rate_measurement(bytes([0x16, 64]) + (950).to_bytes(2, "little"))
    assert (m.hr_bpm, m.contact, m.rr_ms) == (64, True, (950 * 1000 / 1024,))


@pytest.mark.parametrize("data", [
    b"", b"\x01\x40", b"\x08\x40\x01", b"\x10\x40\x01", b"\x10\x40\x00\x00", b"\x00\x40\x00",
])
def test_malformed(data: bytes) -> None:
    with pytest.raises(MalformedFrame):
        parse_heart_rate_measurement(data)


def test_round_trip_through_the_simulated_encoder() -> None:
    rr = tuple(k * 1000 / 1024 for k in (700, 812, 1023, 1500))
    for hr, contact, energy in itertools.product((55, 300), (None, True, False), (None, 7)):
        m = parse_heart_rate_measurement(encode_heart_rate_measurement(hr, rr, contact, energy))
        assert (m.hr_bpm, m.rr_ms, m.contact, m.energy_kj) == (hr, rr, contact, energy)


@given(st.binary(max_size=40))
def test_random_bytes_only_ever_raise_malformed(data: bytes) -> None:
    with suppress(MalformedFrame):
        parse_heart_rate_measurement(data)
    with suppress(MalformedFrame):
        parse_battery_level(data)


def test_battery() -> None:
    assert parse_battery_level(b"\x57") == 87
    with pytest.raises(MalformedFrame):
        parse_battery_level(b"\x65")
