"""Polar Measurement Data (PMD) service: data frames and control point messages.

Layouts follow the Polar BLE SDK (polarofficial/polar-ble-sdk, Android
``BlePMDClient.kt``, ``PmdDataFrame.kt``, ``model/EcgData.kt``, ``model/AccData.kt``,
``PmdSetting.kt``, ``PmdControlPointResponse.kt``, ``PmdMeasurementType.kt``).

A data frame is: measurement type (1 byte), timestamp of the frame's last sample
(uint64 ns since 2000-01-01, device clock), frame type (bit 7 = delta compressed),
then samples. Raw samples are little-endian signed integers. A compressed frame holds
one reference sample (``channels`` signed integers of ``ceil(resolution/8)`` bytes),
then blocks of (bit width, sample count, packed deltas): deltas are signed, packed
least-significant bit first, channels interleaved per sample, each block padded to a
whole byte.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from drivers import MalformedFrame

PMD_SERVICE: Final = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL: Final = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"  # write + indicate, read = features
PMD_DATA: Final = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"  # notify

POLAR_EPOCH_UNIX_S: Final = 946_684_800  # 2000-01-01T00:00:00Z in Unix seconds
HEADER_BYTES: Final = 10
COMPRESSED_BIT: Final = 0x80

MEASUREMENT_KINDS: Final[dict[int, str]] = {
    0: "ecg", 1: "ppg", 2: "acc", 3: "ppi", 5: "gyro", 6: "mag", 7: "skin_temp",
    9: "sdk_mode", 10: "location", 11: "pressure", 12: "temperature",
}
MEASUREMENT_TYPES: Final[dict[str, int]] = {v: k for k, v in MEASUREMENT_KINDS.items()}

# control point
FEATURES_HEADER: Final = 0x0F
RESPONSE_CODE: Final = 0xF0
DEVICE_STOPPED: Final = 0x01  # service-to-client: online measurement stopped
OP_GET_SETTINGS: Final = 0x01
OP_START: Final = 0x02
OP_STOP: Final = 0x03
STATUS_OK: Final = 0
STATUS_ALREADY_IN_STATE: Final = 6
PMD_ERRORS: Final[dict[int, str]] = {
    0: "success", 1: "invalid op code", 2: "invalid measurement type", 3: "not supported",
    4: "invalid length", 5: "invalid parameter", 6: "already in state",
    7: "invalid resolution", 8: "invalid sample rate", 9: "invalid range",
    10: "invalid MTU", 11: "invalid number of channels", 12: "invalid state",
    13: "device in charger", 14: "disk full",
}
SETTING_NAMES: Final[dict[int, str]] = {
    0: "sample_rate", 1: "resolution", 2: "range", 3: "range_milliunit", 4: "channels",
    5: "factor",
}
SETTING_IDS: Final[dict[str, int]] = {v: k for k, v in SETTING_NAMES.items()}
SETTING_SIZES: Final[dict[int, int]] = {0: 2, 1: 2, 2: 2, 3: 4, 4: 1, 5: 4}

ECG_RATE_HZ: Final = 130  # Polar H10 ECG
ECG_RESOLUTION_BITS: Final = 14
ACC_RATES_HZ: Final = (25, 50, 100, 200)
ACC_RANGES_G: Final = (2, 4, 8)
ACC_RESOLUTION_BITS: Final = 16


@dataclass(frozen=True, slots=True)
class PmdFrame:
    """One decoded PMD data frame.

    Attributes
    ----------
    kind : str
        ``"ecg"``, ``"acc"``, ...
    timestamp_ns : int
        Device time of the last sample, ns since 2000-01-01 (device clock).
    frame_type : int
        Frame type without the compression bit.
    compressed : bool
        Whether the frame was delta compressed.
    samples : numpy.ndarray
        Integer samples: ECG in microvolts, shape (n,); ACC in milli-g, shape (n, 3).
    """

    kind: str
    timestamp_ns: int
    frame_type: int
    compressed: bool
    samples: np.ndarray = field(repr=False)


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _raw_samples(content: bytes, size: int, channels: int) -> np.ndarray:
    step = size * channels
    if not content or len(content) % step:
        raise MalformedFrame(f"{len(content)} bytes is not a whole number of {step}-byte samples")
    b = np.frombuffer(content, dtype=np.uint8).astype(np.int64).reshape(-1, size)
    vals = np.zeros(len(b), dtype=np.int64)
    for i in range(size):
        vals |= b[:, i] << (8 * i)
    sign = np.int64(1) << (8 * size - 1)
    vals = (vals ^ sign) - sign
    return vals.reshape(-1, channels)


def _delta_block(content: bytes, pos: int, width: int, count: int, channels: int) -> np.ndarray:
    nbits = width * count * channels
    nbytes = math.ceil(nbits / 8)
    if pos + nbytes > len(content):
        raise MalformedFrame("delta block runs past the end of the frame")
    raw = np.frombuffer(content, dtype=np.uint8, count=nbytes, offset=pos)
    bits = np.unpackbits(raw, bitorder="little")[:nbits].astype(np.int64)
    vals = bits.reshape(-1, width) @ (np.int64(1) << np.arange(width, dtype=np.int64))
    vals -= ((vals >> (width - 1)) & 1) << width
    return vals.reshape(count, channels)


def decode_delta_samples(content: bytes, channels: int, resolution_bits: int) -> np.ndarray:
    """Decode the samples of a delta-compressed frame (after the 10-byte header).

    Parameters
    ----------
    content : bytes
        Reference sample followed by delta blocks.
    channels : int
        Values per sample (3 for ACC).
    resolution_bits : int
        Bits of the reference sample values (1-32).

    Returns
    -------
    numpy.ndarray
        int64 samples, shape (n, channels), reference sample first.

    Raises
    ------
    MalformedFrame
        On a truncated reference or block, a bit width outside 1-32 or a zero count.
    """
    if not 1 <= resolution_bits <= 32 or channels < 1:
        raise MalformedFrame(f"bad resolution {resolution_bits} or channels {channels}")
    ref_size = math.ceil(resolution_bits / 8)
    pos = ref_size * channels
    if len(content) < pos:
        raise MalformedFrame("compressed frame shorter than its reference sample")
    ref = [
        _signed(int.from_bytes(content[i * ref_size : (i + 1) * ref_size], "little"),
                resolution_bits)
        for i in range(channels)
    ]
    blocks = [np.array([ref], dtype=np.int64)]
    while pos < len(content):
        if pos + 2 > len(content):
            raise MalformedFrame("delta block header cut short")
        width, count = content[pos], content[pos + 1]
        if not 1 <= width <= 32 or count == 0:
            raise MalformedFrame(f"bad delta block: width {width}, count {count}")
        blocks.append(_delta_block(content, pos + 2, width, count, channels))
        pos += 2 + math.ceil(width * count * channels / 8)
    return np.cumsum(np.concatenate(blocks), axis=0)


MAX_SCALED: Final = 2.0**31  # beyond int32 a scaled ACC value is garbage, not milli-g


def _scale_f32(samples: np.ndarray, factor: float) -> np.ndarray:
    # The SDK multiplies in 32-bit floats and truncates toward zero (Kotlin toInt()).
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = samples.astype(np.float32) * np.float32(factor)
    if not np.all(np.abs(scaled) < MAX_SCALED):  # also catches inf and NaN
        raise MalformedFrame(f"ACC samples scaled by {factor:g} overflow")
    return scaled.astype(np.int64)


def _decode_acc(content: bytes, frame_type: int, compressed: bool, resolution_bits: int,
                channels: int, factor: float) -> np.ndarray:
    if compressed:
        samples = decode_delta_samples(content, channels, resolution_bits)
        if frame_type == 0:  # values in g: to milli-g (OH1-style frames)
            with np.errstate(over="ignore"):  # an absurd factor: _scale_f32 refuses inf
                to_mg = float(np.float32(factor) * np.float32(1000.0))
            return _scale_f32(samples, to_mg)
        if frame_type == 1:
            return samples if factor == 1.0 else _scale_f32(samples, factor)
        raise MalformedFrame(f"unsupported compressed ACC frame type {frame_type}")
    if frame_type not in (0, 1, 2):
        raise MalformedFrame(f"unsupported raw ACC frame type {frame_type}")
    return _raw_samples(content, frame_type + 1, channels)


def decode_frame(data: bytes | bytearray, *, resolution_bits: int = 16,
                 channels: int | None = None, factor: float = 1.0) -> PmdFrame:
    """Decode one notification of the PMD data characteristic.

    Parameters
    ----------
    data : bytes
        The notified value.
    resolution_bits : int
        Bits per reference value in compressed frames (the ACC setting; 16 on Polar).
    channels : int, optional
        Values per sample; default 1 for ECG, 3 for ACC.
    factor : float
        The scale factor returned when the stream started (compressed ACC only).

    Returns
    -------
    PmdFrame

    Raises
    ------
    MalformedFrame
        On a short header, an unsupported measurement or frame type, or sample bytes
        that do not fit the frame type, or compressed ACC values that overflow once
        scaled by ``factor``. Supported: ECG raw type 0 (Polar H10), ACC raw
        types 0-2 (8/16/24-bit; H10 sends type 1) and compressed types 0 and 1
        (Verity Sense, OH1).
    """
    buf = bytes(data)
    if len(buf) < HEADER_BYTES:
        raise MalformedFrame(f"PMD frame of {len(buf)} bytes is shorter than its header")
    mtype = buf[0] & 0x3F  # upper bits flag offline recordings
    kind = MEASUREMENT_KINDS.get(mtype)
    timestamp = int.from_bytes(buf[1:9], "little")
    frame_type, compressed = buf[9] & 0x7F, bool(buf[9] & COMPRESSED_BIT)
    content = buf[HEADER_BYTES:]
    if kind == "ecg":
        if compressed or frame_type != 0 or (channels or 1) != 1:
            raise MalformedFrame(f"unsupported ECG frame type 0x{buf[9]:02x}")
        samples = _raw_samples(content, 3, 1)[:, 0]
    elif kind == "acc":
        samples = _decode_acc(content, frame_type, compressed, resolution_bits,
                              channels or 3, factor)
    else:
        raise MalformedFrame(f"unsupported PMD measurement type {buf[0]}")
    samples.setflags(write=False)
    return PmdFrame(kind, timestamp, frame_type, compressed, samples)


# ----------------------------------------------------------------- control point


@dataclass(frozen=True, slots=True)
class ControlPointResponse:
    """A PMD control point indication answering a request (first byte 0xF0)."""

    opcode: int
    measurement_type: int
    status: int
    more: bool
    params: bytes

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def error(self) -> str:
        """The status as text (``"success"`` when ok)."""
        return PMD_ERRORS.get(self.status, f"unknown error {self.status}")


def _setting_bytes(setting: str, value: int) -> bytes:
    sid = SETTING_IDS[setting]
    return bytes([sid, 1]) + int(value).to_bytes(SETTING_SIZES[sid], "little")


def build_start_request(kind: str, settings: dict[str, int]) -> bytes:
    """A REQUEST_MEASUREMENT_START with one value per setting, in the given order."""
    body = b"".join(_setting_bytes(name, v) for name, v in settings.items())
    return bytes([OP_START, MEASUREMENT_TYPES[kind]]) + body


def build_ecg_start() -> bytes:
    """Start ECG at 130 Hz, 14-bit: ``02 00 00 01 82 00 01 01 0E 00``."""
    return build_start_request("ecg", {"sample_rate": ECG_RATE_HZ,
                                       "resolution": ECG_RESOLUTION_BITS})


def build_acc_start(rate_hz: int = 200, range_g: int = 8) -> bytes:
    """Start ACC, 16-bit; 200 Hz and 8 g give ``02 02 00 01 C8 00 01 01 10 00 02 01 08 00``.

    Raises
    ------
    ValueError
        If the rate is not 25/50/100/200 Hz or the range not 2/4/8 g.
    """
    if rate_hz not in ACC_RATES_HZ or range_g not in ACC_RANGES_G:
        raise ValueError(f"ACC {rate_hz} Hz / {range_g} g is not offered by Polar straps")
    return build_start_request("acc", {"sample_rate": rate_hz,
                                       "resolution": ACC_RESOLUTION_BITS, "range": range_g})


def build_stop_request(kind: str) -> bytes:
    """STOP_MEASUREMENT: ``03 <type>``."""
    return bytes([OP_STOP, MEASUREMENT_TYPES[kind]])


def build_settings_query(kind: str) -> bytes:
    """GET_MEASUREMENT_SETTINGS: ``01 <type>``."""
    return bytes([OP_GET_SETTINGS, MEASUREMENT_TYPES[kind]])


def parse_features(data: bytes | bytearray) -> frozenset[str]:
    """The measurement kinds a device offers, from a read of the control point."""
    if len(data) < 2 or data[0] != FEATURES_HEADER:
        raise MalformedFrame(f"not a PMD feature read: {bytes(data).hex()}")
    bits = int.from_bytes(bytes(data[1:3]), "little")
    return frozenset(kind for t, kind in MEASUREMENT_KINDS.items() if bits >> t & 1)


def parse_control_point_response(data: bytes | bytearray) -> ControlPointResponse:
    """Decode a control point indication ``F0 op type status [more params...]``."""
    if len(data) < 4 or data[0] != RESPONSE_CODE:
        raise MalformedFrame(f"not a PMD control point response: {bytes(data).hex()}")
    ok = data[3] == STATUS_OK
    more = ok and len(data) > 4 and data[4] != 0
    params = bytes(data[5:]) if ok else b""
    return ControlPointResponse(data[1], data[2], data[3], more, params)


def parse_settings(params: bytes | bytearray) -> dict[str, tuple[float, ...]]:
    """Settings in a query or start response: name -> values (factor as float32).

    Raises
    ------
    MalformedFrame
        On an unknown setting id, a setting without values, values cut short, or a
        factor that is not a positive finite number.
    """
    out: dict[str, tuple[float, ...]] = {}
    pos = 0
    while pos < len(params):
        if pos + 2 > len(params) or params[pos] not in SETTING_SIZES:
            raise MalformedFrame(f"bad PMD settings: {bytes(params).hex()}")
        sid, count = params[pos], params[pos + 1]
        if count == 0:  # callers take a setting's first value
            raise MalformedFrame(f"PMD setting {sid} without values: {bytes(params).hex()}")
        size = SETTING_SIZES[sid]
        pos += 2
        if pos + size * count > len(params):
            raise MalformedFrame(f"PMD settings cut short: {bytes(params).hex()}")
        vals = [bytes(params[pos + i * size : pos + (i + 1) * size]) for i in range(count)]
        if sid == SETTING_IDS["factor"]:
            out["factor"] = tuple(struct.unpack("<f", v)[0] for v in vals)
            if not all(0.0 < f < math.inf for f in out["factor"]):  # NaN fails too
                raise MalformedFrame(f"PMD scale factor not positive: {bytes(params).hex()}")
        else:
            out[SETTING_NAMES[sid]] = tuple(int.from_bytes(v, "little") for v in vals)
        pos += size * count
    return out


def polar_ns_to_unix_s(timestamp_ns: int) -> float:
    """Device time (ns since 2000-01-01) as Unix seconds, for display only."""
    return POLAR_EPOCH_UNIX_S + timestamp_ns / 1e9
