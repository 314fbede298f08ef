"""The ``coach`` command line: one subcommand per module in :mod:`coach.commands`.

Each command module offers ``add_arguments(parser)`` and ``main(args) -> int``; it is
imported only when its command runs, so ``coach --help`` stays fast and the core never
imports Qt, bleak or MQTT unless a command needs them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, str] = {
    "demo": "simulated couple through the whole stack (orb + dashboard, or --headless)",
    "scan": "list nearby heart-rate straps (Bluetooth LE)",
    "run": "a session on real straps: --a ADDR --b ADDR [--t ADDR]",
    "analyze": "breathing from an ECG, accelerometer or RR file (offline or --causal)",
    "record": "record a simulated session to a file",
    "replay": "replay a recording through the same pipeline",
    "export": "export a recording as BIDS physio or CSV",
    "report": "one-page HTML report of a recording",
    "sessions": "list recorded sessions",
    "broker": "run an embedded MQTT broker for a small office",
    "rooms": "list live rooms on an MQTT broker",
    "users": "the clinic's MQTT logins and who may touch which room (for both brokers)",
    "dashboard": "the therapist dashboard of a remote room, over MQTT",
    "bench": "measure latency, CPU, speed and memory on this machine",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` only that command's options are loaded (fast start)."""
    parser = argparse.ArgumentParser(
        prog="coach", description="Real-time breathing coach for couples."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            importlib.import_module(f"coach.commands.{name}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(f"coach.commands.{args.command}")
    try:
        return int(module.main(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
