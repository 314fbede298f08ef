"""``coach scan``: list heart-rate straps advertising nearby."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``coach scan``."""
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to listen")
    parser.add_argument("--json", action="store_true", help="one JSON object per strap")


def main(args: argparse.Namespace) -> int:
    """Scan and print one line per strap; 3 when there is no Bluetooth, 1 on other errors."""
    from drivers import BluetoothUnavailable, StrapError
    from drivers.scan import scan

    try:
        found = asyncio.run(scan(float(getattr(args, "timeout", 5.0))))
    except BluetoothUnavailable as exc:
        print(f"coach scan: {exc}", file=sys.stderr)
        return 3
    except StrapError as exc:
        print(f"coach scan: scanning failed: {exc}", file=sys.stderr)
        return 1
    for f in found:
        if getattr(args, "json", False):
            print(json.dumps({"address": f.address, "name": f.name, "rssi_dbm": f.rssi_dbm,
                              "has_pmd": f.has_pmd}))
        else:
            print(f.description)
    if not found:
        print("coach scan: no heart-rate strap found (is it worn and awake?)", file=sys.stderr)
    return 0
