"""``coach run --a ADDR --b ADDR [--t ADDR]``: a session with real straps."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``coach run``."""
    for label, who in (("a", "partner A"), ("b", "partner B"), ("t", "the therapist")):
        parser.add_argument(f"--{label}", metavar="ADDRESS", help=f"strap of {who}")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: on)")
    parser.add_argument("--json", action="store_true", help="print one JSON state a second")
    parser.add_argument("--no-pmd", action="store_true", help="HR/RR only, even on a Polar H10")


def main(args: argparse.Namespace) -> int:
    """Run until ``--duration`` or Ctrl-C; 2 on bad arguments, 3 without Bluetooth."""
    from drivers import BluetoothUnavailable, StrapError

    addresses = {label: getattr(args, label.lower(), None) for label in ("A", "B", "T")}
    addresses = {k: v for k, v in addresses.items() if v}
    if not addresses:
        print("coach run: give at least --a ADDRESS (find it with `coach scan`)", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(addresses, args))
    except (StrapError, BaseExceptionGroup) as exc:
        err = _strap_error(exc, StrapError)
        if err is None:
            raise
        print(f"coach run: {err}", file=sys.stderr)
        return 3 if isinstance(err, BluetoothUnavailable) else 1
    return 0


def _strap_error(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first driver error in ``exc`` (which may be a task group's exception group)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _strap_error(inner, kind)
            if found is not None:
                return found
        return None
    return exc if isinstance(exc, kind) else None


async def _run(addresses: dict[str, str], args: argparse.Namespace) -> None:
    from coach.clock import RealClock
    from coach.session import Session
    from drivers.scan import scan
    from drivers.strap import Strap, StrapConfig

    await scan(0.5)  # fails at once, with a clear error, when there is no Bluetooth
    clock = RealClock()
    config = StrapConfig(use_pmd=not getattr(args, "no_pmd", False))
    straps = {label: Strap(addr, label, clock, config=config) for label, addr in addresses.items()}
    session = Session(clock, labels=tuple(addresses))
    duration = getattr(args, "duration", None)
    async with asyncio.TaskGroup() as tg:
        if getattr(args, "json", False):
            printer = tg.create_task(_print_states(session), name="coach.run.print")
        try:
            async with asyncio.timeout(duration):
                await session.run({k: s.events() for k, s in straps.items()}, duration)
        except TimeoutError:
            pass
        if getattr(args, "json", False):
            printer.cancel()


async def _print_states(session: Any) -> None:
    last = -1
    async for state in session.states.subscribe():
        second = int(state.t_s - session.t_origin_s)
        if second != last:
            last = second
            print(json.dumps(state.to_json(session.t_origin_s)), flush=True)
