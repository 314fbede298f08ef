"""``coach run --a ADDR --b ADDR [--t ADDR]``: a session with real straps.

The session is recorded by default (``--no-record`` to not), to a new file in the
folder ``coach sessions`` lists, or to ``--record FILE``. However the run ends (its
``--duration``, Ctrl+C, SIGTERM, a strap error) the straps are stopped and the
recording is committed and closed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from coach.recording import default_dir
from coach.wiring import run_session

__all__ = ["add_arguments", "main", "recording_path", "run_session"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``coach run``."""
    for label, who in (("a", "partner A"), ("b", "partner B"), ("t", "the therapist")):
        parser.add_argument(f"--{label}", metavar="ADDRESS", help=f"strap of {who}")
    from coach.commands._common import seconds

    parser.add_argument("--duration", type=seconds, default=None,
                        help="seconds (default: until Ctrl+C, SIGTERM or SIGHUP)")
    parser.add_argument("--json", action="store_true", help="print one JSON state a second")
    parser.add_argument("--no-pmd", action="store_true", help="HR/RR only, even on a Polar H10")
    rec = parser.add_mutually_exclusive_group()
    rec.add_argument("--record", type=Path, default=None, metavar="FILE",
                     help=f"record to this new FILE (default: a new file in {default_dir()})")
    rec.add_argument("--no-record", action="store_true", help="do not record this session")
    parser.add_argument("--headless", action="store_true",
                        help="no windows (they open by default when there is a screen)")
    from coach.commands.demo import add_window_arguments
    from coach.mqtt import add_mqtt_arguments

    add_window_arguments(parser)
    add_mqtt_arguments(parser)


def recording_path(args: argparse.Namespace) -> Path | None:
    """Where this run is recorded: ``--record``, else a new default file; None if not."""
    from coach.commands.record import default_session_path

    if getattr(args, "no_record", False):
        return None
    given = getattr(args, "record", None)
    return Path(given) if given is not None else default_session_path()


def main(args: argparse.Namespace) -> int:
    """Run until ``--duration``, Ctrl+C, SIGTERM or SIGHUP (a clean stop: 0); 2 on bad
    arguments, 3 without Bluetooth."""
    from coach.commands.record import check_new, until_terminated
    from coach.recording import RecordingError
    from drivers import BluetoothUnavailable, StrapError

    addresses = {label: getattr(args, label.lower(), None) for label in ("A", "B", "T")}
    addresses = {k: v for k, v in addresses.items() if v}
    if not addresses:
        print("coach run: give at least --a ADDRESS (find it with `coach scan`)", file=sys.stderr)
        return 2
    from coach.mqtt import mqtt_problem

    if problem := mqtt_problem(args):  # refused before anything runs
        print(f"coach run: {problem}", file=sys.stderr)
        return 2
    path = recording_path(args)
    try:
        if path is not None:
            check_new(path)
        if _windows_wanted(args):
            return _run_with_windows(addresses, args, path)
        if asyncio.run(until_terminated(_run(addresses, args, path))) is None:
            print("coach run: stopped by a signal; the session ended cleanly", file=sys.stderr)
    except RecordingError as exc:
        print(f"coach run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _say_saved(path)
        return 130
    except (StrapError, BaseExceptionGroup) as exc:
        err = _strap_error(exc, StrapError) or _strap_error(exc, RecordingError)
        if err is None:  # a write error stops the session: its line says what was kept
            raise
        print(f"coach run: {err}", file=sys.stderr)
        _say_saved(path)
        return 3 if isinstance(err, BluetoothUnavailable) else 1
    _say_saved(path)
    return 0


def _say_saved(path: Path | None) -> None:
    if path is not None and path.exists():
        print(f"coach run: recorded to {path}", file=sys.stderr)


def _strap_error(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first driver error in ``exc`` (which may be a task group's exception group)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _strap_error(inner, kind)
            if found is not None:
                return found
        return None
    return exc if isinstance(exc, kind) else None


def _windows_wanted(args: argparse.Namespace) -> bool:
    """Windows unless --headless; without a screen, say so and run headless."""
    if getattr(args, "headless", False):
        return False
    from ui.bridge import display_problem

    if problem := display_problem():
        print(f"coach run: {problem}: running without windows", file=sys.stderr)
        return False
    return True


async def _run(addresses: dict[str, str], args: argparse.Namespace, path: Path | None) -> None:
    from coach.clock import RealClock
    from coach.wiring import live_run
    from drivers.scan import scan

    await scan(0.5)  # fails at once, with a clear error, when there is no Bluetooth
    wired = live_run(addresses, RealClock(), use_pmd=not getattr(args, "no_pmd", False),
                     duration_s=getattr(args, "duration", None), record=path, mqtt=args,
                     emit_json=getattr(args, "json", False))
    await wired.run()


def _run_with_windows(addresses: dict[str, str], args: argparse.Namespace,
                      path: Path | None) -> int:
    """The orb and the dashboard over a live session (Bluetooth checked first)."""
    from coach.clock import RealClock
    from coach.commands.demo import window_options
    from coach.wiring import live_run
    from drivers.scan import scan
    from ui.app import run_windows

    asyncio.run(scan(0.5))  # no Bluetooth: one clear line before any window opens
    duration = getattr(args, "duration", None)
    wired = live_run(addresses, RealClock(), use_pmd=not getattr(args, "no_pmd", False),
                     duration_s=duration, record=path, mqtt=args)
    code = run_windows(wired.session, wired.run,
                       window_options(args, wired.labels, quit_when_done=duration is not None))
    _say_saved(path)
    return code
