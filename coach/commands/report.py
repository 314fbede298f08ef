"""``coach report FILE [--out PAGE.html]``: one self-contained HTML page (mode 0600)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coach.commands._common import check_output, open_reader, write_private
from coach.recording import RecordingError
from coach.report import render_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="a recording")
    p.add_argument("--out", type=Path, default=None, metavar="PAGE",
                   help="HTML file to write (default: the recording's name with .html)")
    p.add_argument("--force", action="store_true", help="replace PAGE if it exists")


def main(args: argparse.Namespace) -> int:
    out = args.out or args.file.with_suffix(".html")
    if not check_output("report", args.file, out, args.force):  # before the work
        return 2
    reader = open_reader("report", args.file)
    if reader is None:
        return 2
    try:
        page = render_report(reader, lambda msg: print(f"coach report: {msg}",
                                                      file=sys.stderr, flush=True))
        write_private(out, page, force=args.force)
    except RecordingError as exc:
        print(f"coach report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"coach report: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 2
    finally:
        reader.close()
    print(out)
    return 0
