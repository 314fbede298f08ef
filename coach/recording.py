"""Lossless, crash-safe session recordings in SQLite (WAL).

A recording is one SQLite file (mode 0600) with two tables: ``meta`` (format version,
labels, settings, session origin) and ``events``, one row per raw event, marker,
command or derived state. Waveform chunks are stored whole, as one blob per chunk in
the smallest dtype that holds every sample exactly (int16, int32, float32, float64),
never a row per sample. The recorder is a synchronous sink that drops nothing: rows are
inserted into an open transaction, committed once at least ``commit_interval_s`` of
wall time has passed, so a crash (even ``kill -9``) loses at most the last second.

A damaged file (truncated, overwritten) is salvaged page by page by
:func:`coach.salvage.recover`; readers then raise :class:`RecordingError` with one line
that says what was recovered and where it was saved.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np

from coach.bus import Bus
from coach.types import (
    AccChunk,
    Command,
    EcgChunk,
    HeartRate,
    Label,
    Marker,
    SessionState,
    StrapStatus,
)

FORMAT = "coach-recording"
FORMAT_VERSION = 1
COMMIT_INTERVAL_S = 1.0  # wall seconds between commits: the most a crash may lose
SUFFIX = ".sqlite"

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


def decode_row(row: tuple[Any, ...]) -> Entry:
    """An :class:`Entry` from one ``events`` row (``COLUMNS`` order).

    Raises ValueError, TypeError or KeyError for a row whose values do not fit its kind
    (bytes can change inside a row without SQLite noticing); readers translate them.
    """
    _, rx_s, t_s, kind, label, device, fs_hz, dtype, ncols, data, text = row
    for value in (rx_s, t_s):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"time {value!r:.20} is not a number")
    body = json.loads(text) if text is not None else None
    item: Any
    if kind == "ecg":
        item = EcgChunk(t_s, label, fs_hz, decode_samples(dtype, data, 1))
    elif kind == "acc":
        item = AccChunk(t_s, label, fs_hz, decode_samples(dtype, data, ncols))
    elif kind == "hr":
        item = HeartRate(t_s, label, body["hr_bpm"], tuple(body["rr_ms"]),
                         tuple(body["beat_t_s"]), body["contact"])
    elif kind == "status":
        item = StrapStatus(t_s, label, body["condition"], body["battery_pct"], body["note"])
    elif kind == "marker":
        item = Marker(t_s, body["kind"], body["note"])
    elif kind == "command":
        item = Command(body["kind"], body["value"], body["note"])
    else:  # "state", "settings": plain JSON
        item = body
    return Entry(rx_s, t_s, kind, label, item, device)


# ----------------------------------------------------------------------------- writing


def create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise RecordingError(f"{path} already exists; choose another file") from None
    except OSError as exc:
        raise RecordingError(f"cannot create {path}: {exc.strerror}") from None
    os.close(fd)
    os.chmod(path, 0o600)  # whatever the umask; SQLite gives -wal/-shm the same mode


class Recorder:
    """Writes one session to a new SQLite file; a synchronous sink that drops nothing.

    ``now`` stamps events that carry no time (commands): pass the session clock's
    ``now``. ``wall`` paces commits; it is wall time on purpose, because what a crash
    loses is measured in wall seconds, whatever speed the session clock runs at.
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
        self._last_t_s = t_origin_s
        self.rows = 0
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # fsync the WAL at each commit
        self._db.executescript(SCHEMA)
        started = (started_utc or datetime.now(UTC)).isoformat(timespec="seconds")
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "labels": list(labels),
                "t_origin_s": t_origin_s, "started_utc": started,
                "settings": dict(settings or {})}
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             [(k, _dumps(v)) for k, v in meta.items()])
        self._commit()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._db is None

    def _insert(self, rx_s: float, row: tuple[Any, ...]) -> None:
        if self._db is None:
            raise RecordingError(f"{self.path} is closed")
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        self._db.execute(f"INSERT INTO events ({COLUMNS[4:]}) VALUES ({MARKS})",
                         (rx_s, *row))
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
        if self._db is None:
            raise RecordingError(f"{self.path} is closed")
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _dumps(value)))

    def commit_if_due(self) -> None:
        if self._db is not None and self._wall() - self._last_commit >= self._interval:
            self._commit()

    def _commit(self) -> None:
        assert self._db is not None
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._last_commit = self._wall()

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
            while (state := sub.get_nowait()) is not None:
                self.write_state(state)
            sub.close()

    def close(self) -> None:
        """Mark the end, commit and checkpoint; the file is then one self-contained db."""
        if self._db is None:
            return
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('ended_t_s', ?)",
                         (_dumps(self._last_t_s),))
        self._commit()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        self._db = None


# ----------------------------------------------------------------------------- reading


class RecordingReader:
    """Reads a recording; events come back in time order, decoded to their types."""

    def __init__(self, path: str | os.PathLike[str], *, recover: bool = True) -> None:
        """Open ``path``; if it is damaged, salvage it (when ``recover``) and raise."""
        self.path = Path(path)
        self._recover = recover
        if not self.path.is_file():
            raise RecordingError(f"{self.path}: no such recording")
        self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            self.meta = {k: json.loads(v) for k, v in self._db.execute(
                "SELECT key, value FROM meta")}
            self._check()
        except (sqlite3.DatabaseError, ValueError, TypeError, RecursionError) as exc:
            self._db.close()
            raise _damaged(self.path, exc, recover) from None
        if self.meta.get("format") != FORMAT:
            self._db.close()
            raise RecordingError(f"{self.path} is not a coach recording")
        bad = _bad_meta(self.meta)
        if bad is not None:
            self._db.close()
            raise RecordingError(f"{self.path} has damaged metadata ({bad})")

    def _check(self) -> None:
        result = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(result)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

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
        try:
            lo, hi = self._db.execute("SELECT min(rx_s), max(rx_s) FROM events").fetchone()
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc, self._recover) from None
        if lo is None:
            return self.t_origin_s, self.t_origin_s
        if not all(isinstance(v, int | float) for v in (lo, hi)):
            raise RecordingError(f"{self.path} is damaged (times that are not numbers)")
        return min(lo, self.t_origin_s), hi

    @property
    def duration_s(self) -> float:
        """The session's length: as recorded at its end, else up to its last row."""
        if "duration_s" in self.meta:
            return float(self.meta["duration_s"])
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
        the session received them (host time ``rx_s``)."""
        where, args = _where(kinds, label)
        query = f"SELECT {COLUMNS} FROM events{where} ORDER BY rx_s, id"
        try:
            for row in self._db.execute(query, args):
                try:
                    entry = decode_row(row)
                except (ValueError, TypeError, KeyError, RecursionError) as exc:
                    raise RecordingError(f"{self.path} is damaged: event {row[0]} does not "
                                         f"decode ({type(exc).__name__})") from None
                yield entry
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc, self._recover) from None

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
    for key in ("t_origin_s", "duration_s", "ended_t_s"):
        value = meta.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return key
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


def default_dir() -> Path:
    """Where ``coach record`` puts recordings and ``coach sessions`` looks for them."""
    import platformdirs

    return Path(platformdirs.user_data_dir("coach")) / "recordings"


def new_path(directory: Path | None = None, started: datetime | None = None) -> Path:
    """A fresh file name from the start time, e.g. ``2026-11-25T19-34-12.sqlite``."""
    started = started or datetime.now()
    stem = started.strftime("%Y-%m-%dT%H-%M-%S")
    base = directory or default_dir()
    path, n = base / f"{stem}{SUFFIX}", 1
    while path.exists():
        n += 1
        path = base / f"{stem}-{n}{SUFFIX}"
    return path
