"""Lossless, crash-safe session recordings in SQLite (WAL).

A recording is one SQLite file (mode 0600) with two tables: ``meta`` (format version,
labels, settings, session origin) and ``events``, one row per raw event, marker,
command or derived state. Waveform chunks are stored whole, as one blob per chunk in
the smallest dtype that holds every sample exactly (int16, int32, float32, float64),
never a row per sample. The recorder is a synchronous sink that drops nothing: rows are
inserted into an open transaction, committed once at least ``commit_interval_s`` of
wall time has passed, so a crash (even ``kill -9``) loses at most the last second.

The file is marked closed cleanly (``ended_t_s``, ``duration_s``) only by a commit that
succeeded; on any write error (a full disk, a lost device) the recorder stops, keeps
what was committed and raises :class:`RecordingError` with one line saying how much
that is. While it writes, the recorder holds an exclusive ``flock`` on the file, so a
reader can tell a recording in progress from one whose recorder died.

Readers open paths safely: the SQLite URI is escaped (``%``, ``#``, ``?`` in a name),
and a closed file (no ``-wal`` beside it) is opened ``immutable``, which writes nothing
beside it and works on read-only media. Every row is decoded through one checked
reader (:func:`decode_row`: types, ranges, sizes, time order within a stream); a bad
row is counted and skipped with one warning naming it.

A damaged file (truncated, overwritten) is salvaged page by page by
:func:`coach.salvage.recover`; readers then raise :class:`RecordingError` with one line
that says what was recovered and where it was saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np

from coach.bus import Bus
from coach.types import (
    LABELS,
    AccChunk,
    Command,
    EcgChunk,
    HeartRate,
    Label,
    Marker,
    SessionState,
    StrapStatus,
)

log = logging.getLogger(__name__)

FORMAT = "coach-recording"
FORMAT_VERSION = 1
COMMIT_INTERVAL_S = 1.0  # wall seconds between commits: the most a crash may lose
SUFFIX = ".coach"  # the recordings' suffix; any recording opens whatever its name

# What a row may hold (the checked reader): anything outside is a damaged row.
MAX_SESSION_S = 7 * 24 * 3600.0  # s: events this far from the session origin are damage
MAX_EARLY_S = 3600.0  # s: events this long before the origin (a strap connecting early)
MAX_LATE_S = 60.0  # s: event times this long after a closed file's last row (clock fits)
MAX_BACKSTEP_S = 1.0  # s: a stream's event times may step back this much (host jitter)
MAX_FS_HZ = 10_000.0  # Hz: no strap samples faster
MAX_BLOB_BYTES = 16 * 2**20  # one chunk: a Polar frame is a few hundred bytes
MAX_BEATS = 64  # RR intervals in one notification (20 fit in the largest BLE packet)
MAX_TEXT = 100_000  # characters of a note
WARN_ROWS = 5  # damaged rows named one by one; the rest are counted

RAW_KINDS = ("hr", "ecg", "acc", "status")
Event = HeartRate | AccChunk | EcgChunk | StrapStatus | Marker | Command

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    rx_s REAL NOT NULL,
    t_s REAL NOT NULL,
    kind TEXT NOT NULL,
    label TEXT,
    device_t_s REAL,
    fs_hz REAL,
    dtype TEXT,
    ncols INTEGER,
    data BLOB,
    json TEXT
);
CREATE INDEX IF NOT EXISTS events_rx ON events (rx_s);
"""
COLUMNS = "id, rx_s, t_s, kind, label, device_t_s, fs_hz, dtype, ncols, data, json"
N_COLUMNS = 11
MARKS = ",".join("?" * (N_COLUMNS - 1))


class RecordingError(Exception):
    """A recording cannot be written or read; the message is one line for users."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded row, decoded. ``item`` is the event, or a state's JSON dict.

    ``rx_s`` is when the session received it (host clock); ``t_s`` the event's own time
    (a chunk's first sample), ``device_t_s`` the strap's clock where it has one.
    """

    rx_s: float
    t_s: float
    kind: str
    label: Label | None
    item: Any
    device_t_s: float | None = None


# ----------------------------------------------------------------------------- samples


def encode_samples(values: np.ndarray) -> tuple[str, bytes]:
    """The smallest little-endian dtype code that holds every value exactly, and bytes."""
    a = np.ascontiguousarray(values, dtype=np.float64)
    if a.size and np.isfinite(a).all() and np.array_equal(a, np.round(a)):
        lo, hi = a.min(), a.max()
        for code, info in (("<i2", np.iinfo(np.int16)), ("<i4", np.iinfo(np.int32))):
            if info.min <= lo and hi <= info.max:
                return code, a.astype(code).tobytes()
    with np.errstate(over="ignore"):  # too large for float32: the check below says no
        small = a.astype("<f4")
    if np.array_equal(small.astype(np.float64), a, equal_nan=True):
        return "<f4", small.tobytes()
    return "<f8", a.astype("<f8").tobytes()


SAMPLE_DTYPES = ("<i2", "<i4", "<f4", "<f8")  # all that encode_samples writes


def decode_samples(dtype: str, data: bytes, ncols: int) -> np.ndarray:
    """Inverse of :func:`encode_samples`: float64 samples, shape (n,) or (n, ncols).

    Raises ValueError for anything :func:`encode_samples` cannot have written.
    """
    if dtype not in SAMPLE_DTYPES or not isinstance(data, bytes) or type(ncols) is not int:
        raise ValueError(f"not a sample block: dtype {str(dtype)[:8]!r}, ncols {ncols!r}")
    arr = np.frombuffer(data, dtype=np.dtype(dtype)).astype(np.float64)
    return arr.reshape(-1, ncols) if ncols > 1 else arr


def _row_of(t_s: float, event: Event) -> tuple[Any, ...]:
    """(t_s, kind, label, device_t_s, fs_hz, dtype, ncols, data, json) for one event.

    ``t_s`` stamps events that carry no time of their own (commands).
    """
    device = getattr(event, "device_t_s", None)
    if isinstance(event, EcgChunk | AccChunk):
        kind = "ecg" if isinstance(event, EcgChunk) else "acc"
        arr = event.ecg_uv if isinstance(event, EcgChunk) else event.acc_mg
        code, blob = encode_samples(arr)
        ncols = 1 if arr.ndim == 1 else arr.shape[1]
        return (event.t_s, kind, event.label, device, event.fs_hz, code, ncols, blob, None)
    if isinstance(event, HeartRate):
        body = {"hr_bpm": event.hr_bpm, "rr_ms": list(event.rr_ms),
                "beat_t_s": list(event.beat_t_s), "contact": event.contact}
        return (event.t_s, "hr", event.label, device, None, None, None, None, _dumps(body))
    if isinstance(event, StrapStatus):
        body = {"condition": event.condition, "battery_pct": event.battery_pct,
                "note": event.note}
        return (event.t_s, "status", event.label, device, None, None, None, None,
                _dumps(body))
    if isinstance(event, Marker):
        body = {"kind": event.kind, "note": event.note}
        return (event.t_s, "marker", None, None, None, None, None, None, _dumps(body))
    if isinstance(event, Command):
        body = {"kind": event.kind, "value": event.value, "note": event.note}
        return (t_s, "command", None, None, None, None, None, None, _dumps(body))
    raise RecordingError(f"cannot record a {type(event).__name__}")


def _dumps(obj: Any) -> str:
    # NaN stays NaN (Python's json reads it back), so unknown values survive losslessly
    return json.dumps(obj, separators=(",", ":"), default=str)


def decode_row(row: tuple[Any, ...], bounds: tuple[float, float] = (-math.inf, math.inf)
               ) -> Entry:
    """An :class:`Entry` from one ``events`` row (``COLUMNS`` order), checked.

    Times must be finite and within ``bounds``; sizes, rates and the JSON body must be
    what the recorder writes. Raises ValueError (TypeError, KeyError) naming the first
    problem of a row that does not fit its kind: bytes can change inside a row without
    SQLite noticing, and a file can be edited.
    """
    _, rx_s, t_s, kind, label, device, fs_hz, dtype, ncols, data, text = row
    for name, value in (("rx_s", rx_s), ("t_s", t_s)):
        _check_time(name, value, bounds)
    if device is not None and not _finite(device):
        raise ValueError(f"device_t_s {device!r:.20} is not a time")
    if label is not None and label not in LABELS:
        raise ValueError(f"label {label!r:.20} is not a participant label")
    if text is not None and (not isinstance(text, str) or len(text) > 64 * MAX_TEXT):
        raise TypeError("json is not text of a sane size")
    body = json.loads(text) if text is not None else None
    item: Any
    if kind in ("ecg", "acc"):
        if label is None:
            raise ValueError(f"{kind} chunk without a label")
        if not _finite(fs_hz) or not 0 < fs_hz <= MAX_FS_HZ:
            raise ValueError(f"fs_hz {fs_hz!r:.20} is not a sampling rate")
        want = 1 if kind == "ecg" else 3
        if ncols != want:
            raise ValueError(f"ncols {ncols!r:.20} (a {kind} chunk has {want})")
        if not isinstance(data, bytes) or len(data) > MAX_BLOB_BYTES:
            raise ValueError("data is not a sample block of a sane size")
        if dtype in SAMPLE_DTYPES and len(data) % (np.dtype(dtype).itemsize * want):
            raise ValueError(f"{len(data)} bytes do not hold whole samples of {want}")
        samples = decode_samples(dtype, data, ncols)
        item = (EcgChunk(t_s, label, fs_hz, samples) if kind == "ecg"
                else AccChunk(t_s, label, fs_hz, samples))
    elif kind == "hr":
        _check_body(body, {"hr_bpm": (int, float, type(None)), "rr_ms": list,
                           "beat_t_s": list, "contact": (bool, type(None))})
        hr = body["hr_bpm"]  # NaN: the strap did not know
        if hr is not None and not (math.isnan(hr) or (_finite(hr) and 0 <= hr <= 400)):
            raise ValueError(f"hr_bpm {body['hr_bpm']!r:.20} is not a heart rate")
        rr, beats = body["rr_ms"], body["beat_t_s"]
        if len(rr) > MAX_BEATS or len(beats) != len(rr):
            raise ValueError(f"{len(rr)} RR intervals, {len(beats)} beat times")
        if not all(_finite(x) and 0 < x < 65536 for x in rr):
            raise ValueError("an RR interval is not a duration in ms")
        for b in beats:
            _check_time("beat_t_s", b, bounds)
        if label is None:
            raise ValueError("hr without a label")
        item = HeartRate(t_s, label, body["hr_bpm"], tuple(rr), tuple(beats), body["contact"])
    elif kind == "status":
        _check_body(body, {"condition": str, "battery_pct": (int, type(None)), "note": str})
        if label is None:
            raise ValueError("status without a label")
        item = StrapStatus(t_s, label, body["condition"], body["battery_pct"], body["note"])
    elif kind == "marker":
        _check_body(body, {"kind": str, "note": str})
        item = Marker(t_s, body["kind"], body["note"])
    elif kind == "command":
        _check_body(body, {"kind": str, "note": str})
        if not isinstance(body["value"], str | int | float | bool | type(None)):
            raise TypeError(f"command value is a {type(body['value']).__name__}")
        item = Command(body["kind"], body["value"], body["note"])
    elif kind == "state":
        _check_state(body, bounds)
        item = body
    elif kind == "settings":
        if not isinstance(body, dict):
            raise TypeError("settings are not a mapping")
        item = body
    else:
        raise ValueError(f"unknown kind {kind!r:.20}")
    return Entry(rx_s, t_s, kind, label, item, device)


def _finite(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value))


def _check_time(name: str, value: Any, bounds: tuple[float, float]) -> None:
    if not _finite(value):
        raise ValueError(f"{name} {value!r:.20} is not a time")
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name} {value:.6g} is outside the session")


def _check_body(body: Any, fields: Mapping[str, Any]) -> None:
    if not isinstance(body, dict):
        raise TypeError(f"body is a {type(body).__name__}, not a mapping")
    for key, types in fields.items():
        if not isinstance(body[key], types) or (isinstance(body[key], bool)
                                                and bool not in _tuple(types)):
            raise TypeError(f"{key} is a {type(body[key]).__name__}")
        if isinstance(body[key], str) and len(body[key]) > MAX_TEXT:
            raise ValueError(f"{key} is {len(body[key])} characters long")


def _tuple(types: Any) -> tuple[Any, ...]:
    return types if isinstance(types, tuple) else (types,)


def _check_state(body: Any, bounds: tuple[float, float]) -> None:
    """What the exporters and the report read of a state: its time, partners, pacer."""
    if not isinstance(body, dict):
        raise TypeError(f"state is a {type(body).__name__}, not a mapping")
    _check_time("state t_s", body.get("t_s"), bounds)
    partners = body.get("partners", {})
    if not isinstance(partners, dict) or not all(isinstance(p, dict)
                                                 for p in partners.values()):
        raise TypeError("state partners are not mappings")
    pacer = body.get("pacer")
    if pacer is not None:
        if not isinstance(pacer, dict):
            raise TypeError("state pacer is not a mapping")
        for key in ("t0_s", "phase0", "rate_bpm", "ie_ratio"):
            if not _finite(pacer.get(key)):
                raise ValueError(f"pacer {key} {pacer.get(key)!r:.20} is not a number")
        if not (0 < pacer["rate_bpm"] <= 60 and 0 < pacer["ie_ratio"] <= 100):
            raise ValueError(f"pacer rate {pacer['rate_bpm']:.6g}/min is not a pace")
        _check_time("pacer t0_s", pacer["t0_s"], bounds)


# ----------------------------------------------------------------------------- writing


def create_private(path: Path) -> None:
    """Create ``path`` empty, mode 0600 (its new folders 0700); refuse an existing file."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise RecordingError(f"{path} already exists; choose another file") from None
    except OSError as exc:
        raise RecordingError(f"cannot create {path}: {exc.strerror}") from None
    os.close(fd)
    os.chmod(path, 0o600)  # whatever the umask; SQLite gives -wal/-shm the same mode


def private_dir(folder: Path) -> None:
    """Make ``folder`` (and missing parents) mode 0700; existing folders are left as they are."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for p in missing:
            os.chmod(p, 0o700)  # mkdir's mode is masked by the umask
    except OSError as exc:
        raise RecordingError(f"cannot create {folder}: {exc.strerror}") from None


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside the block are 0600 and folders 0700 (the process umask 077)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


class Recorder:
    """Writes one session to a new SQLite file; a synchronous sink that drops nothing.

    ``now`` stamps events that carry no time (commands): pass the session clock's
    ``now``. ``wall`` paces commits; it is wall time on purpose, because what a crash
    loses is measured in wall seconds, whatever speed the session clock runs at.

    On a write error the recorder stops: it rolls back what was not committed, closes
    the file without marking a clean end, and raises :class:`RecordingError` saying
    what the file holds (``failure`` keeps that line); later writes are refused.
    """

    def __init__(self, path: str | os.PathLike[str], *, labels: tuple[Label, ...],
                 settings: Mapping[str, Any] | None = None,
                 now: Callable[[], float] | None = None, t_origin_s: float = 0.0,
                 wall: Callable[[], float] = time.monotonic,
                 commit_interval_s: float = COMMIT_INTERVAL_S,
                 started_utc: datetime | None = None) -> None:
        self.path = Path(path)
        create_private(self.path)
        self._now, self._wall, self._interval = now, wall, commit_interval_s
        self._last_t_s = self._t_origin_s = t_origin_s
        self.rows = 0
        self.committed_rows = 0
        self.committed_t_s: float | None = None  # rx time of the last committed row
        self.failure: str | None = None
        self._db: sqlite3.Connection | None = None
        # held while writing: readers tell "in progress" from "stopped without closing"
        self._lock = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # fsync the WAL at each commit
            self._db.executescript(SCHEMA)
            started = (started_utc or datetime.now(UTC)).isoformat(timespec="seconds")
            meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "labels": list(labels), "t_origin_s": t_origin_s,
                    "started_utc": started, "settings": dict(settings or {}),
                    "coach_version": coach_version()}
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 [(k, _dumps(v)) for k, v in meta.items()])
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:  # nothing of a session yet: leave no empty file
            self._abandon()
            with contextlib.suppress(OSError):
                for f in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                    f.unlink(missing_ok=True)
            raise RecordingError(f"cannot write {self.path}: {exc}") from None
        self._last_commit = self._wall()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._db is None

    def _execute(self, sql: str, args: Any = ()) -> None:
        if self._db is None:
            raise RecordingError(self.failure or f"{self.path} is closed")
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise self._fail(exc) from None

    def _insert(self, rx_s: float, row: tuple[Any, ...]) -> None:
        self._execute(f"INSERT INTO events ({COLUMNS[4:]}) VALUES ({MARKS})", (rx_s, *row))
        self.rows += 1
        self._last_t_s = max(self._last_t_s, rx_s)
        self.commit_if_due()

    def write(self, event: Event) -> None:
        """Record one raw event, marker or command (the session sink)."""
        rx_s = self._now() if self._now is not None else getattr(event, "t_s", self._last_t_s)
        self._insert(rx_s, _row_of(rx_s, event))

    def write_state(self, state: SessionState) -> None:
        """Record a derived state as JSON, times absolute (origin 0)."""
        self._insert(state.t_s, (state.t_s, "state", None, None, None, None, None, None,
                                 _dumps(state.to_json(0.0))))

    def write_settings(self, t_s: float, settings: Mapping[str, Any]) -> None:
        """Record settings that changed during the session."""
        self._insert(t_s, (t_s, "settings", None, None, None, None, None, None,
                           _dumps(dict(settings))))

    def set_meta(self, key: str, value: Any) -> None:
        """Set one metadata value (e.g. ``t_origin_s`` once the session has started)."""
        if key == "t_origin_s":
            self._t_origin_s = float(value)
        self._execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _dumps(value)))

    def commit_if_due(self) -> None:
        if self._db is not None and self._wall() - self._last_commit >= self._interval:
            self._commit()

    def _commit(self) -> None:
        assert self._db is not None
        if self._db.in_transaction:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._fail(exc) from None
            self.committed_rows = self.rows
            self.committed_t_s = self._last_t_s
        self._last_commit = self._wall()

    def _fail(self, exc: Exception) -> RecordingError:
        """Stop at a write error: keep what was committed, say in one line how much."""
        if self.failure is None:
            span = (self.committed_t_s or 0.0) - self._t_origin_s
            holds = (f"the first {span:.1f} s of the session ({self.committed_rows} events), "
                     "committed before it" if self.committed_t_s is not None
                     and self.committed_rows else "no events")
            self.failure = (f"cannot write {self.path} ({exc}); recording stopped: "
                            f"the file holds {holds}")
            log.debug("%s", self.failure)
        self._abandon()
        return RecordingError(self.failure)

    def _abandon(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    async def autocommit(self, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        """Commit pending rows even when no events arrive (run it as a task)."""
        while self._db is not None:
            await sleep(self._interval / 4)
            self.commit_if_due()

    async def record_states(self, states: Bus[SessionState]) -> None:
        """Record every state published on ``states`` until cancelled."""
        sub = states.subscribe(maxsize=100_000)
        try:
            async for state in sub:
                self.write_state(state)
        finally:  # states published just before cancellation are still recorded
            while not self.closed and (state := sub.get_nowait()) is not None:
                self.write_state(state)
            sub.close()

    def close(self) -> None:
        """Mark the end, commit and checkpoint; the file is then one self-contained db.

        The end is marked in the last transaction: if that commit fails, the file says
        it was not closed cleanly (and this raises, saying what it holds).
        """
        if self._db is None:
            return
        self._execute("INSERT OR REPLACE INTO meta VALUES ('ended_t_s', ?)",
                      (_dumps(self._last_t_s),))
        self._commit()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
        except sqlite3.Error as exc:  # committed and marked; the WAL keeps the rest
            log.warning("%s: checkpoint failed (%s); the data are safe in its -wal", self.path,
                        exc)
        self._db = None
        self._abandon()


# ----------------------------------------------------------------------------- reading


def sqlite_uri(path: Path, **params: str) -> str:
    """A ``file:`` URI for ``path`` that SQLite reads back as exactly that path.

    ``%``, ``#``, ``?`` and spaces in a name are escaped; unescaped, ``x%41`` would open
    ``xA`` and ``couple#3`` a file called ``couple``.
    """
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{urllib.parse.quote(str(path.absolute()))}" + (f"?{query}" if query else "")


def writer_active(path: Path) -> bool:
    """True while a :class:`Recorder` (in any process on this machine) writes ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the shared lock
    return False


def open_readonly(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """A read-only connection to ``path`` that writes nothing beside it; and the private
    copy it reads from, if one was needed (else None).

    A closed recording (no ``-wal``) is opened ``immutable``: no locks, no ``-shm``, so
    it also opens on read-only media. One with a ``-wal`` (in progress, or its recorder
    died) is opened read-only in place; where that is impossible (read-only media), the
    file and its WAL are copied to a private temporary folder and read there.
    """
    wal = Path(f"{path}-wal")
    if not wal.exists():
        return sqlite3.connect(sqlite_uri(path, mode="ro", immutable="1"), uri=True), None
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(sqlite_uri(path, mode="ro"), uri=True)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db, None
    except sqlite3.OperationalError as exc:
        if db is not None:
            db.close()
        if "unable to open" not in str(exc) and "readonly" not in str(exc):
            raise
    tmp = Path(tempfile.mkdtemp(prefix="coach-read-"))
    copy = tmp / "recording.coach"
    shutil.copyfile(path, copy)
    shutil.copyfile(wal, Path(f"{copy}-wal"))
    return sqlite3.connect(sqlite_uri(copy, mode="ro"), uri=True), copy


Warn = Callable[[str], None]


class RecordingReader:
    """Reads a recording; events come back in time order, decoded and checked.

    A row that does not decode (edited or bit-rotted: a rate of 0, a time off by years,
    a mapping where a note should be) is skipped and counted in ``skipped``; ``warn``
    (default: the log) is told of the first few, each naming the row.
    """

    def __init__(self, path: str | os.PathLike[str], *, recover: bool = True,
                 warn: Warn | None = None) -> None:
        """Open ``path``; if it is damaged, salvage it (when ``recover``) and raise."""
        self.path = Path(path)
        self._recover = recover
        self.warn: Warn = warn or log.warning
        self.skipped = 0
        self._bad: set[int] = set()
        self._warned_duration = False
        self._copy: Path | None = None
        if not self.path.is_file():
            raise RecordingError(f"{self.path}: no such recording")
        self.in_progress = writer_active(self.path)
        try:
            self._db, self._copy = open_readonly(self.path)
            self.meta = {k: json.loads(v) for k, v in self._db.execute(
                "SELECT key, value FROM meta")}
            self._check()
        except OSError as exc:
            self.close()
            raise RecordingError(f"cannot read {self.path}: {exc.strerror}") from None
        except sqlite3.OperationalError as exc:
            self.close()
            if "no such table" in str(exc):  # another program's SQLite file: not ours
                raise RecordingError(f"{self.path} is not a coach recording") from None
            raise _damaged(self.path, exc, recover) from None
        except (sqlite3.DatabaseError, ValueError, TypeError, RecursionError) as exc:
            self.close()
            raise _damaged(self.path, exc, recover) from None
        if self.meta.get("format") != FORMAT:
            self.close()
            raise RecordingError(f"{self.path} is not a coach recording")
        version = self.meta.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            self.close()
            raise RecordingError(f"{self.path} has damaged metadata (format_version)")
        if version > FORMAT_VERSION:
            self.close()
            raise RecordingError(f"{self.path} is format version {version}, newer than this "
                                 f"coach reads (version {FORMAT_VERSION}); update coach")
        bad = _bad_meta(self.meta)
        if bad is not None:
            self.close()
            raise RecordingError(f"{self.path} has damaged metadata ({bad})")
        origin, end = self.t_origin_s, self.meta.get("ended_t_s")
        late = end + MAX_LATE_S if _finite(end) and origin <= end <= origin + MAX_SESSION_S \
            else origin + MAX_SESSION_S  # a closed file says where it ends
        self.bounds = (origin - MAX_EARLY_S, late)

    def _check(self) -> None:
        result = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(result)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
        if self._copy is not None:
            shutil.rmtree(self._copy.parent, ignore_errors=True)
            self._copy = None

    @property
    def labels(self) -> tuple[Label, ...]:
        return tuple(self.meta.get("labels", ()))

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.meta.get("settings", {}))

    @property
    def t_origin_s(self) -> float:
        return float(self.meta.get("t_origin_s", 0.0))

    @property
    def closed_cleanly(self) -> bool:
        return "ended_t_s" in self.meta

    def time_range(self) -> tuple[float, float]:
        """First and last receive time of the rows inside the session's bounds."""
        try:
            lo, hi = self._db.execute(
                "SELECT min(rx_s), max(rx_s) FROM events WHERE rx_s BETWEEN ? AND ?",
                self.bounds).fetchone()
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc, self._recover) from None
        if lo is None or not all(_finite(v) for v in (lo, hi)):
            return self.t_origin_s, self.t_origin_s
        return min(lo, self.t_origin_s), hi

    @property
    def duration_s(self) -> float:
        """The session's length: as recorded at its end, else up to its last row.

        A recorded length that cannot be (not finite, negative, over a week) is
        ignored, with a warning, for the length the rows give.
        """
        recorded = self.meta.get("duration_s")
        if recorded is not None:
            if _finite(recorded) and 0 <= recorded <= MAX_SESSION_S:
                return float(recorded)
            if not self._warned_duration:
                self._warned_duration = True
                self.warn(f"{self.path}: recorded duration {recorded!r:.20} s is not a "
                          "session length; using the rows' time range")
        return self.time_range()[1] - self.t_origin_s

    def count(self, kinds: tuple[str, ...] | None = None) -> int:
        where, args = _where(kinds, None)
        try:
            return self._db.execute(f"SELECT count(*) FROM events{where}", args).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc, self._recover) from None

    def entries(self, kinds: tuple[str, ...] | None = None,
                label: Label | None = None) -> Iterator[Entry]:
        """Rows of the given kinds (all when None), optionally one label, in the order
        the session received them (host time ``rx_s``); damaged rows skipped."""
        where, args = _where(kinds, label)
        query = f"SELECT {COLUMNS} FROM events{where} ORDER BY rx_s, id"
        last: dict[tuple[str, Any], float] = {}  # a stream's latest event time
        try:
            for row in self._db.execute(query, args):
                try:
                    entry = decode_row(row, self.bounds)
                    stream = (entry.kind, entry.label)
                    if entry.kind in RAW_KINDS and entry.t_s < last.get(stream, -math.inf) \
                            - MAX_BACKSTEP_S:
                        raise ValueError(f"t_s {entry.t_s:.6g} runs back in time "
                                         f"(the stream was at {last[stream]:.6g})")
                except (ValueError, TypeError, KeyError, RecursionError) as exc:
                    self._skip(row, exc)
                    continue
                if entry.kind in RAW_KINDS:
                    last[stream] = max(entry.t_s, last.get(stream, -math.inf))
                yield entry
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc, self._recover) from None

    def _skip(self, row: tuple[Any, ...], exc: Exception) -> None:
        rowid = row[0] if isinstance(row[0], int) else -1
        if rowid in self._bad:
            return
        self._bad.add(rowid)
        self.skipped += 1
        if self.skipped <= WARN_ROWS:
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            kind = row[3] if isinstance(row[3], str) else "?"
            more = "; further damaged events are skipped and counted" \
                if self.skipped == WARN_ROWS else ""
            self.warn(f"skipped damaged event {rowid} ({kind[:12]}): {reason}{more}")

    def raw(self, label: Label | None = None) -> Iterator[Entry]:
        return self.entries(RAW_KINDS, label)

    def states(self) -> Iterator[dict[str, Any]]:
        return (e.item for e in self.entries(("state",)))


def _bad_meta(meta: Mapping[str, Any]) -> str | None:
    """The first metadata key whose value has the wrong type, or None."""
    labels = meta.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return "labels"
    if not isinstance(meta.get("settings", {}), dict):
        return "settings"
    for key in ("duration_s", "ended_t_s"):
        value = meta.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return key
    if not _finite(meta.get("t_origin_s", 0.0)):
        return "t_origin_s"
    return None


def _where(kinds: tuple[str, ...] | None, label: Label | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if kinds is not None:
        clauses.append(f"kind IN ({','.join('?' * len(kinds))})")
        args.extend(kinds)
    if label is not None:
        clauses.append("label = ?")
        args.append(label)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _first_problem(exc: Exception) -> str:
    """One line from an SQLite error: quick_check lists every broken cell, a line each."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip() and not x.startswith("***")]
    if not lines:
        return type(exc).__name__
    more = f" and {len(lines) - 1} more problems" if len(lines) > 1 else ""
    return lines[0][:200] + more


def _damaged(path: Path, exc: Exception, salvage: bool) -> RecordingError:
    from coach.salvage import recover  # a damaged file is rare; keep the import lazy

    with path.open("rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            return RecordingError(f"{path} is not a coach recording (not an SQLite file)")
    if not salvage:
        return RecordingError(f"{path} is damaged ({_first_problem(exc)}); open it with "
                              "coach replay, export or report to recover what is left")
    try:
        result = recover(path)
    except RecordingError as inner:
        return inner
    return RecordingError(f"{path} is damaged ({_first_problem(exc)}); {result.summary()}")


def coach_version() -> str:
    """This coach's version (as installed), for recordings and reports."""
    from importlib import metadata

    try:
        return metadata.version("coach")
    except metadata.PackageNotFoundError:
        return "unknown"


def default_dir() -> Path:
    """Where ``coach record`` puts recordings and ``coach sessions`` looks for them."""
    import platformdirs

    return Path(platformdirs.user_data_dir("coach")) / "recordings"


def new_path(directory: Path | None = None, started: datetime | None = None) -> Path:
    """A fresh file name from the start time, e.g. ``2026-11-25T19-34-12.coach``."""
    started = started or datetime.now()
    stem = started.strftime("%Y-%m-%dT%H-%M-%S")
    base = directory or default_dir()
    path, n = base / f"{stem}{SUFFIX}", 1
    while path.exists():
        n += 1
        path = base / f"{stem}-{n}{SUFFIX}"
    return path
