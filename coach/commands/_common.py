"""What the recording commands share: opening a recording with a one-line error."""

from __future__ import annotations

import sys
from pathlib import Path

from coach.recording import RecordingError, RecordingReader


def open_reader(command: str, path: Path) -> RecordingReader | None:
    """The reader, or None after printing one line (damage: what was recovered, where)."""
    try:
        reader = RecordingReader(path)
    except RecordingError as exc:
        print(f"coach {command}: {exc}", file=sys.stderr)
        return None
    if not reader.closed_cleanly:
        print(f"coach {command}: note: {path} was not closed cleanly (the recorder was "
              f"stopped by a crash); it holds data up to t={reader.duration_s:.1f} s",
              file=sys.stderr)
    return reader
