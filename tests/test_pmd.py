"""Polar PMD frames and control point messages.

Sources (read, not copied): polarofficial/polar-ble-sdk, Android
``pmd/BlePMDClient.kt`` (parseDeltaFramesAll: reference sample, then blocks of bit
width, count and deltas packed LSB first), ``pmd/model/AccData.kt`` and ``EcgData.kt``
(frame types), ``pmd/PmdControlPointResponse.kt`` (F0 op type status more params),
``pmd/PmdSetting.kt`` (setting ids and sizes). The two compressed vectors below are the
ones documented byte by byte in the SDK's ``AccDataTest.kt``.
"""

from __future__ import annotations

from contextlib import suppress

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import MalformedFrame, pmd
from sims.straps import encode_acc_frame, encode_delta_samples, encode_ecg_frame

TS = 599_999_999_000_000_000


def _frame(mtype: int, frame_type: int, content: bytes, ts: int = 100) -> bytes:
    return bytes([mtype]) + ts.to_bytes(8, "little") + bytes([frame_type]) + content


def test_sdk_compressed_type1_vector() -> None:
    """SDK AccDataTest 'compressed data type 1': ref (-15, 20, 1008), 6-bit deltas."""
    f = pmd.decode_frame(_frame(2, 0x81, bytes.fromhex("F1FF1400F00306017B0F08")))
    assert (f.kind, f.timestamp_ns, f.compressed) == ("acc", 100, True)
    assert f.samples.tolist() == [[-15, 20, 1008], [-20, 17, 1008]]


def test_sdk_compressed_type0_vector_first_block() -> None:
    """SDK AccDataTest 'compressed data type 0': first 10-bit delta is (+190, -105, -85);
    type 0 values are in g and scale by factor * 1000 to milli-g, truncated."""
    content = bytes.fromhex("7107F06A9E8D" "0A01" "BE5CBEBA")
    raw = pmd.decode_delta_samples(content, 3, 16)
    assert raw.tolist() == [[1905, 27376, -29282], [2095, 27271, -29367]]
    f = pmd.decode_frame(_frame(2, 0x80, content), factor=2.44e-4)
    factor = np.float32(np.float32(2.44e-4) * np.float32(1000))
    assert f.samples[0].tolist() == [int(np.float32(v) * factor) for v in (1905, 27376, -29282)]


def test_ecg_raw_round_trip() -> None:
    uv = np.array([-(2**23), -1, 0, 1, 2**23 - 1, 1234, -4321])
    f = pmd.decode_frame(encode_ecg_frame(TS, uv))
    assert (f.kind, f.timestamp_ns, f.frame_type) == ("ecg", TS, 0)
    assert f.samples.shape == (7,) and f.samples.tolist() == uv.tolist()


@pytest.mark.parametrize("compressed", [False, True])
def test_acc_round_trip(compressed: bool) -> None:
    rng = np.random.default_rng(3)
    mg = np.cumsum(rng.integers(-300, 300, (300, 3)), axis=0).clip(-8000, 8000)
    f = pmd.decode_frame(encode_acc_frame(TS, mg, compressed=compressed))
    assert f.kind == "acc" and f.compressed is compressed and f.samples.shape == (300, 3)
    assert np.array_equal(f.samples, mg)


@pytest.mark.parametrize("frame_type,size", [(0, 1), (1, 2), (2, 3)])
def test_acc_raw_frame_types(frame_type: int, size: int) -> None:
    vals = [-1, 2, -3, 4, -5, 6]
    content = b"".join(v.to_bytes(size, "little", signed=True) for v in vals)
    f = pmd.decode_frame(_frame(2, frame_type, content))
    assert f.samples.tolist() == [[-1, 2, -3], [4, -5, 6]]


def test_delta_widths_and_many_blocks() -> None:
    s = np.array([[0, 0, 0], [1, -1, 0], [-1, 1, 0], [2**14, -(2**14), 5]] * 100)
    assert np.array_equal(pmd.decode_delta_samples(encode_delta_samples(s), 3, 16), s)


@pytest.mark.parametrize("data", [
    b"", _frame(0, 0, b"")[:9], _frame(0, 0, b"\x01\x02"), _frame(0, 0x80, b"\x01\x02\x03"),
    _frame(2, 1, b"\x01" * 7), _frame(2, 3, b"\x00" * 6), _frame(2, 0x81, b"\x00" * 5),
    _frame(2, 0x81, b"\x00" * 6 + b"\x06"), _frame(2, 0x81, b"\x00" * 6 + b"\x06\x02\x00"),
    _frame(2, 0x81, b"\x00" * 6 + b"\x00\x01"), _frame(1, 0, b"\x00" * 3),
])
def test_malformed_frames(data: bytes) -> None:
    with pytest.raises(MalformedFrame):
        pmd.decode_frame(data)


@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_malformed(data: bytes) -> None:
    with suppress(MalformedFrame):
        pmd.decode_frame(data)


@given(st.sampled_from([0x00, 0x02]), st.sampled_from([0, 1, 2, 3, 0x80, 0x81, 0x82]),
       st.binary(max_size=200), st.integers(1, 32))
def test_random_content_with_valid_headers(mtype: int, ftype: int, body: bytes, res: int) -> None:
    try:
        f = pmd.decode_frame(_frame(mtype, ftype, body), resolution_bits=res)
    except MalformedFrame:
        return
    assert len(f.samples) >= 1


def test_control_point_requests() -> None:
    assert pmd.build_ecg_start() == bytes.fromhex("02000001820001010E00")
    assert pmd.build_acc_start() == bytes.fromhex("02020001C80001011000020108" "00")
    assert pmd.build_acc_start(25, 2) == bytes.fromhex("0202000119000101100002010200")
    assert pmd.build_stop_request("acc") == b"\x03\x02"
    assert pmd.build_settings_query("ecg") == b"\x01\x00"
    with pytest.raises(ValueError):
        pmd.build_acc_start(130)


def test_control_point_responses_and_settings() -> None:
    ok = pmd.parse_control_point_response(bytes.fromhex("F0020200000501" "0000803F"))
    assert ok.ok and ok.opcode == 2 and not ok.more
    assert pmd.parse_settings(ok.params) == {"factor": (1.0,)}
    err = pmd.parse_control_point_response(bytes.fromhex("F0020206"))
    assert not err.ok and err.error == "already in state" and err.params == b""
    q = pmd.parse_settings(bytes.fromhex("0004190032006400C800" "01011000" "0203020004000800"))
    assert q == {"sample_rate": (25, 50, 100, 200), "resolution": (16,), "range": (2, 4, 8)}
    assert pmd.parse_features(bytes.fromhex("0F0500")) == {"ecg", "acc"}
    for bad in (b"\x01", b"\xf0\x02\x00", bytes.fromhex("0F")):
        with pytest.raises(MalformedFrame):
            (pmd.parse_features if bad[:1] == b"\x0f" else pmd.parse_control_point_response)(bad)
    with pytest.raises(MalformedFrame):
        pmd.parse_settings(b"\x00\x02\x82")
