"""The ``coach`` command line: one subcommand per module in :mod:`coach.commands`.

Each command module offers ``add_arguments(parser)`` and ``main(args) -> int``; it is
imported only when its command runs, so ``coach --help`` stays fast and the core never
imports Qt, bleak or MQTT unless a command needs them.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
from importlib import metadata

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


class _Parser(argparse.ArgumentParser):
    """Errors in one line that points at --help, not a screen of usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def version() -> str:
    try:
        return metadata.version("coach")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown (not installed)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command`` only that command's options are loaded (fast start)."""
    parser = _Parser(
        prog="coach", description="Real-time breathing coach for couples."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("--version", action="version", version=f"coach {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            importlib.import_module(f"coach.commands.{name}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        print(f"coach: no command {command!r}; {hint}(see coach --help)", file=sys.stderr)
        return 2
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(f"coach.commands.{args.command}")
    try:
        return int(module.main(args))
    except KeyboardInterrupt:  # commands that record stop cleanly on Ctrl+C (exit 0)
        print(f"coach {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
