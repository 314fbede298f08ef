"""Salvage of damaged recordings, page by page.

A truncated or partly overwritten SQLite file often cannot be read through its b-trees:
one lost interior page hides every row below it. Rows themselves live in table-leaf
pages, so this module reads every page of the file (and of its ``-wal``, newest frame
wins), parses the cells of table-leaf pages, keeps those shaped like rows of our
``events`` and ``meta`` tables, and writes them into a new, healthy recording.

References
----------
SQLite database file format, https://www.sqlite.org/fileformat2.html (sections 1.3 the
header, 1.6 b-tree pages, 2.1 record format, 4 the WAL file).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coach import recording as rec

_HEADER = b"SQLite format 3\x00"
_TABLE_LEAF = 0x0D
_KINDS = frozenset(("hr", "ecg", "acc", "status", "marker", "command", "state", "settings"))


@dataclass
class RecoveryResult:
    """What :func:`recover` found and where it saved it."""

    source: Path
    output: Path
    events: int = 0
    t_range: tuple[float, float] | None = None
    labels: tuple[str, ...] = ()
    kinds: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if self.t_range is None:
            span = "no events"
        else:
            lo, hi = self.t_range
            span = f"{self.events} events from t={lo:.1f} s to t={hi:.1f} s"
        labels = ",".join(self.labels) or "none"
        return f"recovered {span} (labels {labels}) into {self.output}"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = 0
    for k in range(8):
        b = buf[i + k]
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, i + k + 1
    return (value << 8) | buf[i + 8], i + 9


def _value(buf: bytes, i: int, serial: int) -> tuple[Any, int]:
    if serial in (0, 8, 9):
        return {0: None, 8: 0, 9: 1}[serial], i
    if serial in (10, 11):
        raise ValueError("reserved serial type")
    if 1 <= serial <= 6:
        n = (1, 2, 3, 4, 6, 8)[serial - 1]
        return int.from_bytes(buf[i:i + n], "big", signed=True), i + n
    if serial == 7:
        return struct.unpack(">d", buf[i:i + 8])[0], i + 8
    n = (serial - 12) // 2
    raw = bytes(buf[i:i + n])
    if len(raw) != n:
        raise ValueError("record runs past its payload")
    return (raw if serial % 2 == 0 else raw.decode("utf-8")), i + n


def _record(payload: bytes) -> list[Any]:
    size, i = _varint(payload, 0)
    serials = []
    while i < size:
        s, i = _varint(payload, i)
        serials.append(s)
    values, j = [], size
    for s in serials:
        v, j = _value(payload, j, s)
        values.append(v)
    return values


def _pages(path: Path) -> tuple[dict[int, bytes], int]:
    """Page number -> bytes, from the main file overlaid with its WAL frames."""
    data = path.read_bytes()
    size, reserved = 4096, 0
    if data[:16] == _HEADER and len(data) >= 100:
        declared = int.from_bytes(data[16:18], "big")
        declared = 65536 if declared == 1 else declared
        if 512 <= declared <= 65536 and declared & (declared - 1) == 0:  # a power of two
            size, reserved = declared, data[20]
    usable = size - reserved
    pages = {n + 1: data[n * size:(n + 1) * size] for n in range(len(data) // size)}
    wal = path.with_name(path.name + "-wal")
    if wal.is_file():
        w = wal.read_bytes()
        wsize = int.from_bytes(w[8:12], "big") if len(w) >= 32 else 0
        if wsize == size:
            for off in range(32, len(w) - 24 - size + 1, 24 + size):
                pages[int.from_bytes(w[off:off + 4], "big")] = w[off + 24:off + 24 + size]
    return pages, usable


def _cells(pages: dict[int, bytes], usable: int) -> Iterator[tuple[int, list[Any]]]:
    for number, page in pages.items():
        hdr = 100 if number == 1 else 0
        if len(page) <= hdr + 8 or page[hdr] != _TABLE_LEAF:
            continue
        ncells = int.from_bytes(page[hdr + 3:hdr + 5], "big")
        for c in range(ncells):
            try:
                ptr = int.from_bytes(page[hdr + 8 + 2 * c:hdr + 10 + 2 * c], "big")
                yield _cell(pages, page, ptr, usable)
            except (LookupError, ValueError, struct.error):  # UnicodeDecodeError too
                continue  # a torn cell or a lost overflow page: skip it, keep the rest


def _cell(pages: dict[int, bytes], page: bytes, ptr: int,
          usable: int) -> tuple[int, list[Any]]:
    length, i = _varint(page, ptr)
    rowid, i = _varint(page, i)
    local, cap = length, usable - 35
    if length > cap:
        m = (usable - 12) * 32 // 255 - 23
        k = m + (length - m) % (usable - 4)
        local = k if k <= cap else m
    if length > len(pages) * usable:  # a torn length: no chain could hold it
        raise ValueError("record longer than the file")
    payload = bytearray(page[i:i + local])
    nxt = int.from_bytes(page[i + local:i + local + 4], "big") if local < length else 0
    seen: set[int] = set()
    while nxt and len(payload) < length:
        if nxt in seen:
            raise ValueError("overflow chain loops")
        seen.add(nxt)
        over = pages[nxt]  # KeyError -> the chain was lost
        payload += over[4:usable]
        nxt = int.from_bytes(over[:4], "big")
    if len(payload) < length:
        raise ValueError("overflow chain is short")
    return rowid, _record(bytes(payload[:length]))


def _is_event(values: list[Any]) -> bool:
    return (len(values) == rec.N_COLUMNS and values[0] is None
            and isinstance(values[1], int | float) and isinstance(values[2], int | float)
            and values[3] in _KINDS and (values[4] is None or isinstance(values[4], str)))


def recover(path: str | Path, output: Path | None = None) -> RecoveryResult:
    """Salvage every intact event row of ``path`` into a new recording ``output``.

    Without ``output`` the copy goes beside the damaged file (``X.recovered.coach``);
    a copy made earlier from the same damaged file (same size and time) is reused, not
    written again. The copy is written under a temporary name and renamed when complete,
    so a full disk never leaves half a copy. Raises
    :class:`~coach.recording.RecordingError` when nothing at all is left or the copy
    cannot be saved.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise rec.RecordingError(f"cannot read {path}: {exc.strerror}") from None
    origin = {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if output is None:
        output, earlier = _recovered_name(path, origin)
        if earlier:
            return _reused(path, output)
    try:
        pages, usable = _pages(path)
    except OSError as exc:
        raise rec.RecordingError(f"cannot read {path}: {exc.strerror}") from None
    events: dict[int, list[Any]] = {}
    meta: dict[str, str] = {}
    for rowid, values in _cells(pages, usable):
        if _is_event(values):
            events[rowid] = values
        elif len(values) == 2 and all(isinstance(v, str) for v in values):
            meta[values[0]] = values[1]
    if meta.get("format") != json.dumps(rec.FORMAT) and not events:
        raise rec.RecordingError(f"{path} is damaged beyond repair: no events survived")
    meta["recovered_from"] = json.dumps(origin)
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    try:
        _write(partial, meta, events)
        os.replace(partial, output)
    except (OSError, sqlite3.Error, rec.RecordingError) as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
            Path(f"{partial}-journal").unlink(missing_ok=True)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise rec.RecordingError(f"{path} is damaged; {len(events)} events could be "
                                 f"recovered but not saved to {output} ({why})") from None
    return _result(path, output, events)


def _recovered_name(path: Path, origin: dict[str, Any]) -> tuple[Path, bool]:
    """Where to save the copy, and whether a copy of this very damaged file is there."""
    stem = path.name.removesuffix(path.suffix) if path.suffix else path.name
    out, n = path.with_name(f"{stem}.recovered{rec.SUFFIX}"), 1
    while out.exists():
        if _recovered_from(out) == origin:
            return out, True
        n += 1
        out = path.with_name(f"{stem}.recovered-{n}{rec.SUFFIX}")
    return out, False


def _recovered_from(path: Path) -> Any:
    try:
        db = sqlite3.connect(rec.sqlite_uri(path, mode="ro", immutable="1"), uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'recovered_from'").fetchone()
        finally:
            db.close()
        return json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError, TypeError):
        return None


def _reused(source: Path, output: Path) -> RecoveryResult:
    db = sqlite3.connect(rec.sqlite_uri(output, mode="ro", immutable="1"), uri=True)
    try:
        events = {row[0]: list(row) for row in db.execute(
            f"SELECT {rec.COLUMNS} FROM events")}
    finally:
        db.close()
    return _result(source, output, events)


def _write(output: Path, meta: dict[str, str], events: dict[int, list[Any]]) -> None:
    rec.create_private(output)
    db = sqlite3.connect(output, isolation_level=None)
    try:
        db.executescript(rec.SCHEMA)
        db.execute("BEGIN")
        meta.setdefault("format", json.dumps(rec.FORMAT))
        meta["recovered"] = "true"
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
        db.executemany(f"INSERT INTO events ({rec.COLUMNS}) VALUES ({rec.MARKS},?)",
                       ([rowid, *values[1:]] for rowid, values in sorted(events.items())))
        db.execute("COMMIT")
    finally:
        db.close()


def _result(source: Path, output: Path, events: dict[int, list[Any]]) -> RecoveryResult:
    result = RecoveryResult(source, output, events=len(events))
    for values in events.values():
        result.kinds[values[3]] = result.kinds.get(values[3], 0) + 1
    if events:
        times = [float(v[1]) for v in events.values()]
        result.t_range = (min(times), max(times))
        result.labels = tuple(sorted({v[4] for v in events.values() if v[4]}))
    return result
