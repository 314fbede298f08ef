"""``coach sessions``: the recordings in the default folder (date, duration, labels, size)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from coach.recording import SUFFIX, RecordingError, RecordingReader, default_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None, metavar="DIR",
                   help=f"folder to list (default {default_dir()})")
    p.add_argument("--json", action="store_true", help="one JSON object per recording")


def describe(path: Path) -> dict[str, Any]:
    """Date, duration, labels and size of one recording (``error`` if unreadable)."""
    size = sum(f.stat().st_size for f in (path, Path(f"{path}-wal")) if f.exists())
    info: dict[str, Any] = {"file": str(path), "size_mb": round(size / 1e6, 2)}
    try:
        with RecordingReader(path, recover=False) as reader:
            info.update(date=reader.meta.get("started_utc", ""),
                        duration_s=round(reader.duration_s, 1), labels=list(reader.labels),
                        complete=reader.closed_cleanly)
    except RecordingError as exc:
        info["error"] = str(exc)
    return info


def main(args: argparse.Namespace) -> int:
    folder = args.dir or default_dir()
    if not folder.is_dir():
        print(f"coach sessions: no recordings yet ({folder} does not exist)", file=sys.stderr)
        return 0
    paths = sorted(p for p in folder.glob(f"*{SUFFIX}") if ".recovered" not in p.name)
    paths += sorted(folder.glob(f"*.recovered*{SUFFIX}"))
    for path in paths:
        info = describe(path)
        if args.json:
            print(json.dumps(info))
        elif "error" in info:
            print(f"{path.name}  unreadable: {info['error']}")
        else:
            mins = info["duration_s"] / 60.0
            flag = "" if info["complete"] else "  (not closed cleanly)"
            print(f"{info['date']:<25}  {mins:6.1f} min  {','.join(info['labels']):<6}"
                  f"  {info['size_mb']:7.2f} MB  {path.name}{flag}")
    return 0
