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
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: on)")
    parser.add_argument("--json", action="store_true", help="print one JSON state a second")
    parser.add_argument("--no-pmd", action="store_true", help="HR/RR only, even on a Polar H10")
    rec = parser.add_mutually_exclusive_group()
    rec.add_argument("--record", type=Path, default=None, metavar="FILE",
                     help=f"record to this new FILE (default: a new file in {default_dir()})")
    rec.add_argument("--no-record", action="store_true", help="do not record this session")


def recording_path(args: argparse.Namespace) -> Path | None:
    """Where this run is recorded: ``--record``, else a new default file; None if not."""
    from coach.commands.record import default_session_path

    if getattr(args, "no_record", False):
        return None
    given = getattr(args, "record", None)
    return Path(given) if given is not None else default_session_path()


def main(args: argparse.Namespace) -> int:
    """Run until ``--duration``, Ctrl+C or SIGTERM; 2 on bad arguments, 3 without Bluetooth."""
    from coach.commands.record import check_new, until_terminated
    from coach.recording import RecordingError
    from drivers import BluetoothUnavailable, StrapError

    addresses = {label: getattr(args, label.lower(), None) for label in ("A", "B", "T")}
    addresses = {k: v for k, v in addresses.items() if v}
    if not addresses:
        print("coach run: give at least --a ADDRESS (find it with `coach scan`)", file=sys.stderr)
        return 2
    path = recording_path(args)
    try:
        if path is not None:
            check_new(path)
        asyncio.run(until_terminated(_run(addresses, args, path)))
    except RecordingError as exc:
        print(f"coach run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _say_saved(path)
        return 130
    except (StrapError, BaseExceptionGroup) as exc:
        err = _strap_error(exc, StrapError)
        if err is None:
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


async def _run(addresses: dict[str, str], args: argparse.Namespace, path: Path | None) -> None:
    from coach.clock import RealClock
    from coach.session import Session
    from drivers.scan import scan
    from drivers.strap import Strap, StrapConfig

    await scan(0.5)  # fails at once, with a clear error, when there is no Bluetooth
    clock = RealClock()
    config = StrapConfig(use_pmd=not getattr(args, "no_pmd", False))
    straps = {label: Strap(addr, label, clock, config=config) for label, addr in addresses.items()}
    session = Session(clock, labels=tuple(addresses))
    settings = {"source": "straps", "use_pmd": config.use_pmd}
    await run_session(session, {k: s.events() for k, s in straps.items()},
                      duration_s=getattr(args, "duration", None), record=path,
                      settings=settings, emit_json=getattr(args, "json", False))


async def run_session(session: Any, sources: Mapping[str, AsyncIterator[Any]], *,
                      duration_s: float | None, record: Path | None,
                      settings: Mapping[str, Any], emit_json: bool = False) -> None:
    """Run ``session`` on ``sources`` (straps' event streams) until ``duration_s`` or
    cancelled, recorded to ``record`` unless None, printing a JSON state a second."""
    from coach.commands.record import maybe_recording

    async with maybe_recording(session, record, settings), asyncio.TaskGroup() as tg:
        printer = (tg.create_task(_print_states(session), name="coach.run.print")
                   if emit_json else None)
        await session.run(sources, duration_s)
        if printer is not None:
            printer.cancel()


async def _print_states(session: Any) -> None:
    last = -1
    async for state in session.states.subscribe():
        second = int(state.t_s - session.t_origin_s)
        if second != last:
            last = second
            print(json.dumps(state.to_json(session.t_origin_s)), flush=True)
