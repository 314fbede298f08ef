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
    b"", b"\x01\x40", b"\x08\x40\x01", b"\x10\x40\x01", b"\x00\x40\x00",
    b"\x10\x40",  # RR flag set, no RR interval: invalid in Nordic's reading of the spec
    b"\x18\x40\x10\x00",  # the same after an energy field
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


# Peer test vectors with an RR interval of 0. Each peer reports the frame, RR 0 included;
# dropping the impossible interval is the driver's job (tests/test_bluez.py), not the parser's.
ZERO_RR_PEER_FRAMES = [
    # polarofficial/polar-ble-sdk, sources/Android/android-communications/library/src/test/
    # java/com/polar/androidcommunications/api/ble/model/gatt/client/BleHrClientTest.kt,
    # `rr interval`, measurementFrame3: uint16 HR 0, one RR of 0
    (bytes([0x11, 0x00, 0x00, 0x00, 0x00]), 0, (0,)),
    # polarofficial/polar-ble-sdk, sources/iOS/ios-communications/Tests/
    # iOSCommunicationsTests/BleHrClientTest.swift, testRRinterval, third frame
    (bytes([0x10, 0x00, 0x00, 0x00]), 0, (0,)),
    # eisaev/blevalueparser, tests/heartratemeasurementtest.cpp, HR8_RR9: 170 bpm, nine RR
    (bytes([0x10, 0xAA, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0xF3, 0x03,
            0xFC, 0xFF, 0xFD, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF]),
     170, (0x0000, 0x0001, 0x0002, 0x0003, 0x03F3, 0xFFFC, 0xFFFD, 0xFFFE, 0xFFFF)),
]


@pytest.mark.parametrize(("data", "hr", "rr_units"), ZERO_RR_PEER_FRAMES)
def test_zero_rr_peer_frames_parse_as_sent(data: bytes, hr: int, rr_units: tuple[int, ...]) -> None:
    m = parse_heart_rate_measurement(data)
    assert m.hr_bpm == hr
    assert m.rr_ms == tuple(u * 1000 / 1024 for u in rr_units)
    assert m.rr_ms[0] == 0.0
