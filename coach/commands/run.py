"""``coach run --a ADDR --b ADDR [--t ADDR]``: a session with real straps.

The session is recorded by default (``--no-record`` to not), to a new file in the
folder ``coach sessions`` lists, or to ``--record FILE``. However the run ends (its
``--duration``, Ctrl+C, SIGTERM, a strap error) the straps are stopped and the
recording is committed and closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from coach.recording import default_dir


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


def _straps_session(addresses: dict[str, str], args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from coach.clock import RealClock
    from coach.session import Session
    from drivers.strap import Strap, StrapConfig

    clock = RealClock()
    config = StrapConfig(use_pmd=not getattr(args, "no_pmd", False))
    straps = {label: Strap(addr, label, clock, config=config) for label, addr in addresses.items()}
    session = Session(clock, labels=tuple(addresses))
    settings = {"source": "straps", "use_pmd": config.use_pmd}
    return session, {k: s.events() for k, s in straps.items()}, settings


async def _run(addresses: dict[str, str], args: argparse.Namespace, path: Path | None) -> None:
    from coach.mqtt import bridge_from_args
    from drivers.scan import scan

    await scan(0.5)  # fails at once, with a clear error, when there is no Bluetooth
    session, sources, settings = _straps_session(addresses, args)
    await run_session(session, sources, duration_s=getattr(args, "duration", None),
                      record=path, settings=settings, emit_json=getattr(args, "json", False),
                      bridge=bridge_from_args(session, args))


def _run_with_windows(addresses: dict[str, str], args: argparse.Namespace,
                      path: Path | None) -> int:
    """The orb and the dashboard over a live session (Bluetooth checked first)."""
    from coach.mqtt import bridge_from_args
    from drivers.scan import scan
    from ui.app import WindowOptions, run_windows

    asyncio.run(scan(0.5))  # no Bluetooth: one clear line before any window opens
    session, sources, settings = _straps_session(addresses, args)
    bridge = bridge_from_args(session, args)

    async def run() -> None:
        await run_session(session, sources, duration_s=getattr(args, "duration", None),
                          record=path, settings=settings, bridge=bridge)

    opts = WindowOptions(
        orb=not getattr(args, "no_orb", False),
        dashboard=not getattr(args, "no_dashboard", False),
        screen=getattr(args, "screen", None),
        fullscreen=getattr(args, "fullscreen", None),
        quit_when_done=getattr(args, "duration", None) is not None,
        labels=tuple(addresses),
    )
    code = run_windows(session, run, opts)
    _say_saved(path)
    return code


async def run_session(session: Any, sources: Mapping[str, AsyncIterator[Any]], *,
                      duration_s: float | None, record: Path | None,
                      settings: Mapping[str, Any], emit_json: bool = False,
                      bridge: Any = None) -> None:
    """Run ``session`` on ``sources`` (straps' event streams) until ``duration_s`` or
    cancelled, recorded to ``record`` unless None, printing a JSON state a second and
    publishing to MQTT through ``bridge`` when given."""
    from coach.commands.record import maybe_recording

    async with maybe_recording(session, record, settings), asyncio.TaskGroup() as tg:
        printer = (tg.create_task(_print_states(session), name="coach.run.print")
                   if emit_json else None)
        publisher = tg.create_task(bridge.run(), name="coach.mqtt") if bridge else None
        await session.run(sources, duration_s)
        for task in (printer, publisher):
            if task is not None:
                task.cancel()


async def _print_states(session: Any) -> None:
    last = -1
    async for state in session.states.subscribe():
        second = int(state.t_s - session.t_origin_s)
        if second != last:
            last = second
            print(json.dumps(state.to_json(session.t_origin_s)), flush=True)
