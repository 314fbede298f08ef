"""What the recording commands share: opening a recording with a one-line error,
checking arguments, and writing outputs that never replace a file by accident."""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from coach.recording import RecordingError, RecordingReader, private_dir


def open_reader(command: str, path: Path) -> RecordingReader | None:
    """The reader, or None after printing one line (damage: what was recovered, where).

    Damaged rows met later are reported on stderr, a line each for the first few.
    """
    def warn(message: str) -> None:
        print(f"coach {command}: {message}", file=sys.stderr)

    try:
        reader = RecordingReader(path, warn=warn)
    except RecordingError as exc:
        print(f"coach {command}: {exc}", file=sys.stderr)
        return None
    if reader.in_progress:
        warn(f"note: {path} is still being recorded; it holds data up to "
             f"t={reader.duration_s:.1f} s so far")
    elif not reader.closed_cleanly:
        warn(f"note: {path} was not closed cleanly (its recorder was stopped by a crash, "
             f"a kill or a write error); it holds data up to t={reader.duration_s:.1f} s")
    return reader


def seconds(text: str) -> float:
    """An argparse type: a finite, positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite, positive number of seconds, "
                                         f"got {text!r}")
    return value


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def scenario_name(text: str) -> str:
    """An argparse type: the name of a simulated scenario, with a suggestion if mistyped."""
    from sims.scenarios import SCENARIOS

    if text in SCENARIOS:
        return text
    raise argparse.ArgumentTypeError(f"unknown scenario {text!r}{did_you_mean(text, SCENARIOS)};"
                                     f" choose one of: {', '.join(sorted(SCENARIOS))}")


def same_file(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` name one file (links and relative paths included)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(command: str, source: Path, out: Path, force: bool) -> bool:
    """Refuse (one line, False) an output that is the input or exists without --force;
    make its folder (0700 when new) first, so the work is not lost at the end."""
    if same_file(source, out) or out.absolute() == source.absolute():
        print(f"coach {command}: {out} is the recording itself; choose another output",
              file=sys.stderr)
        return False
    if out.exists() and not force:
        print(f"coach {command}: {out} already exists; choose another output or add --force",
              file=sys.stderr)
        return False
    try:
        private_dir(out.parent)
    except RecordingError as exc:
        print(f"coach {command}: {exc}", file=sys.stderr)
        return False
    return True


def write_private(path: Path, text: str, force: bool = False) -> None:
    """Write ``text`` to ``path`` (mode 0600) whole or not at all: a temporary file in
    the same folder, renamed over ``path`` once complete."""
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if not force and path.exists():
            raise FileExistsError(17, "File exists", str(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
