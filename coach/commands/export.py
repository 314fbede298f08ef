"""``coach export FILE --out DIR [--format bids|csv]``: files for research tools."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coach.commands._common import open_reader, same_file
from coach.export import export_bids, export_csv
from coach.recording import RecordingError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="a recording")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--format", choices=("bids", "csv"), default="bids",
                   help="BIDS physio (TSV.gz + JSON) or plain CSV (default bids)")
    p.add_argument("--subject-prefix", default=None, metavar="P",
                   help="BIDS subject = prefix + label (default: an id of the session, e.g. "
                        "sub-s3f9a2c1dA; couple07 -> sub-couple07A)")
    p.add_argument("--session", default=None, metavar="S", help="BIDS session label")
    p.add_argument("--force", action="store_true",
                   help="replace files of an earlier export (default: refuse)")


def main(args: argparse.Namespace) -> int:
    for value in (args.subject_prefix or "", args.session or ""):
        if value and not (value.isascii() and value.isalnum()):
            print(f"coach export: BIDS labels must be letters and digits, got {value!r}",
                  file=sys.stderr)
            return 2
    if same_file(args.file, args.out) or args.out.absolute() == args.file.absolute():
        print(f"coach export: {args.out} is the recording itself; choose another folder",
              file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"coach export: {args.out} is a file, not a folder", file=sys.stderr)
        return 2
    reader = open_reader("export", args.file)
    if reader is None:
        return 2
    try:
        if args.format == "bids":
            files = export_bids(reader, args.out, subject_prefix=args.subject_prefix,
                                session=args.session, force=args.force)
        else:
            files = export_csv(reader, args.out, force=args.force)
    except RecordingError as exc:
        print(f"coach export: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"coach export: cannot write {exc.filename or args.out}: {exc.strerror}",
              file=sys.stderr)
        return 2
    finally:
        reader.close()
    print(f"coach export: wrote {len(files)} files to {args.out}", file=sys.stderr)
    return 0
