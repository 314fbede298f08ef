"""The ECG, accelerometer and R-R files ``coach analyze`` reads: formats, checks, streaming.

Accepted formats (``docs/files.md`` is the user's version of this list) are recognised
from the header line:

- coach's own CSV (what ``coach export --format csv`` writes): ``time_s,ecg_uv``;
  ``time_s,x_mg,y_mg,z_mg``; ``time_s,rr_ms``. An ACC file may name its axes in g
  (``x_g,y_g,z_g``: read as g and converted to mG) and may carry a fifth magnitude
  column (``total_g`` / ``total_mg``, ignored), so a logger's ``time_s, x_g, y_g, z_g,
  total_g`` file needs only a header line. The unit is always read from the header,
  never guessed from the values: a headerless ACC or ECG file is refused.
- an R-R file with a single ``rr_ms`` column, or no header (one interval in ms a line).
- Polar Sensor Logger exports (semicolon separated, columns found by name, other
  columns ignored): ``sensor timestamp [ns]`` with ``X [mg];Y [mg];Z [mg]`` (ACC) or
  ``ecg [uV]`` (ECG); ``RR-interval [ms]`` (the RR file) or ``PP-interval [ms]`` (the
  PPI file) for ``--rr``. Headers as written by the app (``Phone timestamp;sensor
  timestamp [ns];X [mg];Y [mg];Z [mg]``, ``Phone timestamp;sensor timestamp [ns];
  timestamp [ms];ecg [uV]``, ``Phone timestamp;RR-interval [ms]``, ``Phone timestamp;
  PP-interval [ms];error estimate [ms];blocker;contact;contact;hr [bpm]``) as read by
  public parsers of its files: tsteven4/ecg-analysis ``src/ecg_analysis/analyze_ecg.py``
  (RR and ECG, ``sep=";"``) and obss/biobss's Polar reader (ACC ``X [mg]``, PPI
  ``PP-interval [ms]``). The sensor time stamp counts nanoseconds from 2000-01-01
  (polarofficial/polar-ble-sdk ``technical_documentation/TimeSystemExplained.md``).

Sampled files (ECG, ACC) may repeat and jitter their time stamps, as phone and logger
apps do: rows sharing a stamp are averaged, and the samples are resampled linearly onto
an even grid at the file's mean rate (as many grid points as distinct stamps). Time
that runs backwards, and holes longer than ``MAX_GAP_S``, are refused with the line
number. Output times count from the file's first sample.

Files are read in blocks, never as a whole: memory follows the rows kept (about 80 bytes
a row of ACC at the peak, the float64 output included; ``bench/analyze_files.py``) up to
``MAX_ROWS``, and a line longer than ``MAX_LINE_BYTES`` (a 2 GB file with no line break)
is refused as soon as the first block is read.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np

BLOCK_BYTES: Final = 1 << 20  # bytes read at a time
MAX_LINE_BYTES: Final = 1000  # a sample row is under 100; a longer line is not a row of numbers
MAX_ROWS: Final = 1 << 22  # rows: 5.8 h of ACC at 200 Hz, 9 h of ECG at 130 Hz
MAX_GAP_S: Final = 1.0  # s: a longer hole in the time stamps is refused, not bridged
MIN_DURATION_S: Final = 10.0  # shorter than two slow breaths: nothing to analyse
MAX_ABS_TIME_S: Final = 1e10  # about 300 years: beyond it a column is not a clock
MAX_ABS_VALUE: Final = 1e7  # 10 V in uV, 10,000 g in mG: beyond it a sample is not a signal
MAX_RR_MS: Final = 60_000.0  # a minute between beats is already no heart rhythm
# sampling rates the filters can be designed for (ECG cleaning passes up to 40 Hz)
RATE_RANGE_HZ: Final = {"ecg": (100.0, 5000.0), "acc": (10.0, 5000.0)}
RATE_SLACK: Final = 0.02  # a nominal 100 Hz logger with a slow clock or lost rows still counts


class SignalFileError(ValueError):
    """A file that cannot be analysed; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Layout:
    """One accepted header: where time and values are, and their units."""

    name: str
    delimiter: str
    columns: tuple[str, ...]  # exact header (coach CSV), or the columns looked up by name
    time: str | None  # time column (None: none, or not numeric like Polar's phone stamp)
    values: tuple[str, ...]  # value columns, in this order
    value_scale: float = 1.0  # to uV / mG / ms
    time_scale: float = 1.0  # to s
    exact: bool = True  # the header must be exactly ``columns`` (else: found by name)


@dataclass(frozen=True, slots=True)
class Sampled:
    """Samples on an even grid: uV of shape (n,) or mG of shape (n, 3)."""

    values: np.ndarray
    fs_hz: float
    layout: str


_NS: Final = 1e-9
_POLAR_T: Final = "sensor timestamp [ns]"
_ACC_MG = ("x_mg", "y_mg", "z_mg")
_ACC_G = ("x_g", "y_g", "z_g")
LAYOUTS: Final[dict[str, tuple[Layout, ...]]] = {
    "acc": (
        Layout("coach", ",", ("time_s", *_ACC_MG), "time_s", _ACC_MG),
        Layout("coach", ",", ("time_s", *_ACC_MG, "total_mg"), "time_s", _ACC_MG),
        Layout("g", ",", ("time_s", *_ACC_G), "time_s", _ACC_G, 1000.0),
        Layout("g", ",", ("time_s", *_ACC_G, "total_g"), "time_s", _ACC_G, 1000.0),
        Layout("polar", ";", (_POLAR_T, "x [mg]", "y [mg]", "z [mg]"), _POLAR_T,
               ("x [mg]", "y [mg]", "z [mg]"), time_scale=_NS, exact=False),
    ),
    "ecg": (
        Layout("coach", ",", ("time_s", "ecg_uv"), "time_s", ("ecg_uv",)),
        Layout("polar", ";", (_POLAR_T, "ecg [uv]"), _POLAR_T, ("ecg [uv]",),
               time_scale=_NS, exact=False),
    ),
    "rr": (
        Layout("coach", ",", ("rr_ms",), None, ("rr_ms",)),
        Layout("coach", ",", ("time_s", "rr_ms"), "time_s", ("rr_ms",)),
        Layout("polar", ";", ("rr-interval [ms]",), None, ("rr-interval [ms]",), exact=False),
        Layout("polar-ppi", ";", ("pp-interval [ms]",), None, ("pp-interval [ms]",),
               exact=False),
    ),
}
_EXPECTED: Final = {
    "acc": "time_s,x_mg,y_mg,z_mg (or x_g,y_g,z_g; optional total_*) or a Polar Sensor "
           "Logger ACC file (sensor timestamp [ns];X [mg];Y [mg];Z [mg])",
    "ecg": "time_s,ecg_uv or a Polar Sensor Logger ECG file (sensor timestamp [ns];ecg [uV])",
    "rr": "rr_ms, time_s,rr_ms, no header, or a Polar Sensor Logger RR or PPI file "
          "(RR-interval [ms] / PP-interval [ms])",
}


_EXAMPLE: Final = {"acc": "time_s,x_g,y_g,z_g or time_s,x_mg,y_mg,z_mg", "ecg": "time_s,ecg_uv",
                   "rr": "time_s,rr_ms (without a header: one interval a line)"}


def read_ecg(path: Path) -> Sampled:
    """An ECG file, in uV on an even grid (see the module docstring for formats)."""
    return _read_sampled(path, "ecg")


def read_acc(path: Path) -> Sampled:
    """An accelerometer file, in mG (n, 3) on an even grid."""
    return _read_sampled(path, "acc")


def read_rr(path: Path) -> np.ndarray:
    """R-R (or P-P) intervals in ms, in file order."""
    table = _read_table(path, "rr")
    name, rr = table.name, table.take_values()[:, 0]
    bad = np.flatnonzero(~((rr > 0) & (rr <= MAX_RR_MS)))
    if bad.size:
        raise SignalFileError(f"{name}: line {table.line_of(int(bad[0]))}: R-R interval "
                              f"{rr[bad[0]]:.6g} ms is outside (0, {MAX_RR_MS:g}]")
    if rr.size < 3:
        raise SignalFileError(f"{name}: {rr.size} R-R intervals, need at least 3")
    if rr.sum() < MIN_DURATION_S * 1000.0:
        raise SignalFileError(f"{name}: the R-R intervals span {rr.sum() / 1000.0:.3g} s, "
                              f"need at least {MIN_DURATION_S:g} s")
    return rr.astype(np.float64)


# ----------------------------------------------------------------------------- reading


def _read_table(path: Path, kind: str) -> _Table:
    """Every row of the file, checked; the header (first non-blank line) picks the layout."""
    name = _shown(path)
    table = None
    with _open(path) as f:
        for block in _blocks(f, name):
            if table is None:
                first = next((i for i, s in enumerate(block.lines) if s.strip()), None)
                if first is None:
                    continue
                table, is_data = _table_for(block.lines[first], name, kind, block.start + first)
                block = block.after(first if is_data else first + 1)
            table.add(block)
    if table is None:
        raise SignalFileError(f"{name}: empty file")
    return table


def _read_sampled(path: Path, kind: str) -> Sampled:
    table = _read_table(path, kind)
    name, t = table.name, table.take_time()
    if t.size == 0 or t[-1] - t[0] < MIN_DURATION_S:
        span = t[-1] - t[0] if t.size else 0.0
        raise SignalFileError(f"{name}: {span:.3g} s of data, need at least {MIN_DURATION_S:g} s")
    t, v = _merge_repeats(t, table.take_values())
    fs = (t.size - 1) / (t[-1] - t[0])
    lo, hi = RATE_RANGE_HZ[kind]
    if not lo * (1 - RATE_SLACK) <= fs <= hi * (1 + RATE_SLACK):
        raise SignalFileError(f"{name}: sampled at {fs:.4g} Hz, need {lo:g} to {hi:g} Hz")
    grid = np.arange(t.size) / fs
    grid += t[0]
    if kind == "ecg":
        return Sampled(np.interp(grid, t, v[:, 0]), float(fs), table.layout.name)
    out = np.empty((t.size, v.shape[1]))
    for k in range(v.shape[1]):  # a column at a time: memory stays near the output's size
        out[:, k] = np.interp(grid, t, v[:, k])
    return Sampled(out, float(fs), table.layout.name)


def _merge_repeats(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sharing a time stamp (time never decreases here) become their mean."""
    new = np.empty(t.size, dtype=bool)
    new[0] = True
    np.greater(t[1:], t[:-1], out=new[1:])
    if new.all():
        return t, v
    starts = np.flatnonzero(new)
    del new
    counts = np.diff(starts, append=t.size).astype(v.dtype)
    v = np.add.reduceat(v, starts, axis=0)
    v /= counts[:, None]
    return t[starts], v


class _Table:
    """Rows of one layout, checked block by block; keeps only the numbers it needs."""

    def __init__(self, name: str, kind: str, layout: Layout, header: list[str]) -> None:
        self.name, self.kind, self.layout = name, kind, layout
        wanted = ([layout.time] if layout.time else []) + list(layout.values)
        self.usecols = tuple(header.index(c) for c in wanted)
        self.ncols = len(header)
        self._t: list[np.ndarray] = []
        self._v: list[np.ndarray] = []
        self._lines: list[np.ndarray] = []  # line of each row, for R-R files (few rows)
        self._rows = 0
        self._last: tuple[float, int] | None = None  # time and line of the last row

    def add(self, block: _Block) -> None:
        ends, fields = block.ends, block.count(self.layout.delimiter)
        lengths = np.diff(ends, prepend=-1) - 1
        blank = lengths == 0
        for i in np.flatnonzero((fields == 0) & ~blank):  # few, except in R-R files
            blank[i] = not block.lines[i].strip()
        rows = np.flatnonzero(~blank)
        if not rows.size:
            return
        numbers = block.start + rows
        self._check_columns(block, rows, fields[rows])
        self._rows += rows.size
        if self._rows > MAX_ROWS:
            raise SignalFileError(f"{self.name}: more than {MAX_ROWS} rows (line "
                                  f"{int(numbers[-1])}): split the file")
        a = self._parse(block, rows, blank.any())
        bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
        if bad.size:
            raise self._error(block, rows[bad[0]], "not a finite number")
        lay = self.layout
        v = a[:, 1:] if lay.time else a
        if self.kind == "rr":  # ranges checked by read_rr, which names the line
            self._lines.append(numbers)
        else:
            big = np.flatnonzero(np.any(np.abs(v) > MAX_ABS_VALUE / lay.value_scale, axis=1))
            if big.size:
                raise self._error(block, rows[big[0]],
                                  f"a value beyond {MAX_ABS_VALUE:,.0f} (uV or mG)")
            v = (v * lay.value_scale).astype(np.float32)  # 7 digits: more than any strap gives
        if lay.time:
            self._add_time(a[:, 0], block, rows)
        self._v.append(v)

    def _error(self, block: _Block, i: int, what: str) -> SignalFileError:
        return SignalFileError(f"{self.name}: line {block.start + int(i)}: {what} "
                               f"({_cut(block.lines[i])})")

    def _add_time(self, raw: np.ndarray, block: _Block, rows: np.ndarray) -> None:
        big = np.flatnonzero(np.abs(raw) > MAX_ABS_TIME_S / self.layout.time_scale)
        if big.size:
            raise self._error(block, rows[big[0]], f"a time beyond {MAX_ABS_TIME_S:.0e} s")
        t = raw * self.layout.time_scale
        numbers = block.start + rows
        prev_t = np.append(self._last[0] if self._last else t[0], t[:-1])
        prev_line = np.append(self._last[1] if self._last else 0, numbers[:-1])
        step = t - prev_t
        back = np.flatnonzero(step < 0)
        if back.size:
            i = int(back[0])
            raise SignalFileError(
                f"{self.name}: line {int(numbers[i])}: time runs backwards ({t[i]:.9g} s "
                f"after {prev_t[i]:.9g} s on line {int(prev_line[i])})")
        gap = np.flatnonzero(step > MAX_GAP_S)
        if gap.size and self.kind != "rr":  # beat times may have holes: a strap lost
            i = int(gap[0])
            raise SignalFileError(
                f"{self.name}: line {int(numbers[i])}: a {step[i]:.3g} s hole in the time "
                f"stamps (at most {MAX_GAP_S:g} s is bridged): split the file there")
        self._last = (float(t[-1]), int(numbers[-1]))
        self._t.append(t)

    def _check_columns(self, block: _Block, rows: np.ndarray, fields: np.ndarray) -> None:
        need = self.ncols - 1
        least = need if self.layout.exact else max(self.usecols)
        wrong = np.flatnonzero((fields < least) | ((fields > need) & self.layout.exact))
        if wrong.size:
            i = int(wrong[0])
            raise self._error(block, rows[i], f"{fields[i] + 1} columns, the header has "
                                              f"{self.ncols}")

    def _parse(self, block: _Block, rows: np.ndarray, blanks: bool) -> np.ndarray:
        """The numbers of the rows; loadtxt skips empty lines, not lines of spaces."""
        if not blanks:
            a = self._loadtxt(io.StringIO(block.text), rows.size)
            if a is not None:
                return a
        lines = [block.lines[i] for i in rows]
        a = self._loadtxt(lines, rows.size)
        if a is not None:
            return a
        lo, hi = 0, len(lines)  # the first line that does not parse, by bisection
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._loadtxt(lines[lo:mid], mid - lo) is not None:
                lo = mid
            else:
                hi = mid
        raise self._error(block, rows[lo], "not numeric")

    def _loadtxt(self, source: list[str] | io.StringIO, rows: int) -> np.ndarray | None:
        """``rows`` rows of numbers, or None if the text is not that."""
        try:
            a = np.loadtxt(source, delimiter=self.layout.delimiter, usecols=self.usecols,
                           ndmin=2, comments=None, dtype=np.float64)
        except ValueError:
            return None
        return a if a.shape[0] == rows else None

    def take_time(self) -> np.ndarray:
        """All time stamps in s, handing the blocks over (they are freed)."""
        t = np.concatenate(self._t) if self._t else np.empty(0)
        self._t.clear()
        return t

    def take_values(self) -> np.ndarray:
        """All values, (rows, columns), handing the blocks over."""
        k = len(self.layout.values)
        v = np.concatenate(self._v) if self._v else np.empty((0, k))
        self._v.clear()
        return v

    def line_of(self, row: int) -> int:
        return int(np.concatenate(self._lines)[row])


# ----------------------------------------------------------------------------- text


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise SignalFileError(f"{_shown(path)}: {exc.strerror or exc}") from exc


class _Block:
    """Complete lines of a file (line ends ``\\n``), numbered from ``start``."""

    def __init__(self, start: int, data: bytes, name: str) -> None:
        self.start, self.data, self.name = start, data, name
        self._bytes = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(self._bytes == ord("\n"))
        self.ends = ends if data.endswith(b"\n") else np.append(ends, len(data))
        long = np.flatnonzero(np.diff(self.ends, prepend=-1) - 1 > MAX_LINE_BYTES)
        if long.size:
            raise SignalFileError(f"{name}: line {start + int(long[0])} is longer than "
                                  f"{MAX_LINE_BYTES} bytes: not a file of samples")
        self.text = _decode(data, name, start)
        self._lines: list[str] | None = None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")[: self.ends.size]
        return self._lines

    def count(self, delimiter: str) -> np.ndarray:
        """How often ``delimiter`` occurs on each line."""
        at = np.flatnonzero(self._bytes == ord(delimiter))
        return np.bincount(np.searchsorted(self.ends, at), minlength=self.ends.size)

    def after(self, n: int) -> _Block:
        """The lines after the first ``n``."""
        cut = int(self.ends[n - 1]) + 1 if n else 0
        return _Block(self.start + n, self.data[cut:], self.name)


def _blocks(f: BinaryIO, name: str) -> Iterator[_Block]:
    """The file a block at a time, cut after a line break."""
    pending, line = b"", 1
    while True:
        try:
            block = f.read(BLOCK_BYTES)
        except OSError as exc:
            raise SignalFileError(f"{name}: {exc.strerror or exc}") from exc
        data = pending + block
        end = data.rfind(b"\n") + 1 if block else len(data)
        pending = data[end:]
        if len(pending) > MAX_LINE_BYTES:
            at = line + data.count(b"\n", 0, end)
            raise SignalFileError(f"{name}: line {at} is longer than {MAX_LINE_BYTES} bytes: "
                                  "not a file of samples")
        if end:
            chunk = data[:end].replace(b"\r\n", b"\n")
            if not block:
                chunk = chunk.removesuffix(b"\r")
            if line == 1:
                chunk = chunk.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
            yield _Block(line, chunk, name)
            line += chunk.count(b"\n")
        if not block:
            return


def _decode(data: bytes, name: str, line: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if line == 1 and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise SignalFileError(f"{name}: UTF-16 text: save it as UTF-8") from exc
        at = line + data.count(b"\n", 0, exc.start)
        raise SignalFileError(f"{name}: line {at}: not UTF-8 text") from exc


def _table_for(text: str, name: str, kind: str, line: int) -> tuple[_Table, bool]:
    """The table a file's first line announces, and whether that line is already data."""
    delimiter = ";" if ";" in text else ","
    fields = [c.strip().lower() for c in text.split(delimiter)]
    if len(fields) > 1 and not fields[-1]:
        fields.pop()  # Polar Sensor Logger ends some headers with the separator
    if _numeric(fields):
        if kind == "rr" and len(fields) == 1:
            return _Table(name, kind, LAYOUTS["rr"][0], ["rr_ms"]), True
        raise SignalFileError(f"{name}: no header (line {line} is data): add one naming the "
                              f"columns and their unit, e.g. {_EXAMPLE[kind]}")
    for lay in LAYOUTS[kind]:
        if lay.delimiter != delimiter:
            continue
        if (tuple(fields) == lay.columns if lay.exact else set(lay.columns) <= set(fields)):
            return _Table(name, kind, lay, fields), False
    raise SignalFileError(f"{name}: unknown header {_cut(text)}: expected {_EXPECTED[kind]}")


def _numeric(fields: list[str]) -> bool:
    try:
        [float(c) for c in fields]
    except ValueError:
        return False
    return True


def _shown(path: Path) -> str:
    text = str(path)
    return text if text.isprintable() else repr(text)


def _cut(text: str, n: int = 60) -> str:
    """A line as shown in an error: a repr (control characters would break the line), cut."""
    return repr(text[:n] + ("..." if len(text) > n else ""))
