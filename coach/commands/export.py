"""``coach export FILE --out DIR [--format bids|csv]``: files for research tools."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coach.commands._common import open_reader
from coach.export import export_bids, export_csv
from coach.recording import RecordingError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="a recording")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--format", choices=("bids", "csv"), default="bids",
                   help="BIDS physio (TSV.gz + JSON) or plain CSV (default bids)")
    p.add_argument("--subject-prefix", default="", metavar="P",
                   help="BIDS subject = prefix + label, e.g. couple07 -> sub-couple07A")
    p.add_argument("--session", default=None, metavar="S", help="BIDS session label")


def main(args: argparse.Namespace) -> int:
    for value in (args.subject_prefix, args.session or ""):
        if value and not value.isalnum():
            print(f"coach export: BIDS labels must be letters and digits, got {value!r}",
                  file=sys.stderr)
            return 2
    reader = open_reader("export", args.file)
    if reader is None:
        return 2
    try:
        if args.format == "bids":
            files = export_bids(reader, args.out, subject_prefix=args.subject_prefix,
                                session=args.session)
        else:
            files = export_csv(reader, args.out)
    except (OSError, RecordingError) as exc:
        print(f"coach export: {exc}", file=sys.stderr)
        return 2
    finally:
        reader.close()
    print(f"coach export: wrote {len(files)} files to {args.out}", file=sys.stderr)
    return 0
