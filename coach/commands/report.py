"""``coach report FILE [--out PAGE.html]``: one self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coach.commands._common import open_reader
from coach.recording import RecordingError
from coach.report import render_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="a recording")
    p.add_argument("--out", type=Path, default=None, metavar="PAGE",
                   help="HTML file to write (default: next to the recording)")


def main(args: argparse.Namespace) -> int:
    reader = open_reader("report", args.file)
    if reader is None:
        return 2
    out = args.out or args.file.with_suffix(".html")
    try:
        page = render_report(reader, lambda msg: print(f"coach report: {msg}",
                                                      file=sys.stderr, flush=True))
        out.write_text(page, encoding="utf-8")
    except (OSError, RecordingError) as exc:
        print(f"coach report: {exc}", file=sys.stderr)
        return 2
    finally:
        reader.close()
    print(out)
    return 0
