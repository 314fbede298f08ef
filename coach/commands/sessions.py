"""``coach sessions``: the recordings in a folder (date, duration, labels, size).

Every file that opens as a recording is listed, whatever its name (``.coach`` is the
suffix coach writes); a damaged one is listed as unreadable, with why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from coach.recording import RecordingError, RecordingReader, default_dir

SQLITE_HEADER = b"SQLite format 3\x00"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None, metavar="DIR",
                   help=f"folder to list (default {default_dir()})")
    p.add_argument("--json", action="store_true", help="one JSON object per recording")


def describe(path: Path) -> dict[str, Any]:
    """Date, duration, labels and size of one recording (``error`` if unreadable)."""
    size = sum(f.stat().st_size for f in (path, Path(f"{path}-wal")) if f.exists())
    info: dict[str, Any] = {"file": str(path), "size_mb": round(size / 1e6, 2)}
    try:
        with RecordingReader(path, recover=False, warn=lambda _m: None) as reader:
            info.update(date=reader.meta.get("started_utc", ""),
                        duration_s=round(reader.duration_s, 1), labels=list(reader.labels),
                        complete=reader.closed_cleanly, in_progress=reader.in_progress)
    except RecordingError as exc:
        info["error"] = str(exc)
    return info


def candidates(folder: Path) -> list[Path]:
    """The SQLite files in ``folder`` (not their -wal/-shm): recordings, or damaged ones."""
    out = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.endswith(("-wal", "-shm", "-journal")):
            continue
        try:
            with path.open("rb") as f:
                if f.read(16) == SQLITE_HEADER:
                    out.append(path)
        except OSError:
            continue
    return [p for p in out if ".recovered" not in p.name] + \
        [p for p in out if ".recovered" in p.name]


def main(args: argparse.Namespace) -> int:
    folder = args.dir or default_dir()
    if not folder.is_dir():
        print(f"coach sessions: no recordings yet ({folder} does not exist)", file=sys.stderr)
        return 0
    for path in candidates(folder):
        info = describe(path)
        if args.json:
            print(json.dumps(info))
        elif "error" in info:
            if "not a coach recording" not in info["error"]:
                print(f"{path.name}  unreadable: {info['error']}")
        else:
            mins = info["duration_s"] / 60.0
            flag = ("  (in progress)" if info["in_progress"]
                    else "" if info["complete"] else "  (not closed cleanly)")
            print(f"{info['date']:<25}  {mins:6.1f} min  {','.join(info['labels']):<6}"
                  f"  {info['size_mb']:7.2f} MB  {path.name}{flag}")
    return 0
