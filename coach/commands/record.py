"""``coach record``: run a session and record it (simulated straps for now).

Live sessions record through the same helpers: ``coach run`` (on by default) and
``coach demo --record`` open a :func:`live_recorder` and await :func:`record_session`
instead of ``Session.run``. :func:`until_terminated` gives headless commands the clean
close on SIGTERM that the windows get from :mod:`ui.bridge`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from coach.clock import Clock, clock_for_speed
from coach.recording import SUFFIX, Recorder, RecordingError, default_dir, new_path
from coach.types import StrapEvent

log = logging.getLogger(__name__)
T = TypeVar("T")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sims.scenarios import SCENARIOS

    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help=f"recording file (default: a new file in {default_dir()})")
    p.add_argument("--duration", type=float, default=600.0, metavar="S",
                   help="seconds to record (default 600)")
    p.add_argument("--scenario", default="calm-anchor", choices=sorted(SCENARIOS),
                   help="simulated couple to record (default calm-anchor)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--speed", default="1", metavar="X|max",
                   help="times faster than real time, or 'max' (default 1)")


async def record_session(session: Any, sources: Mapping[str, AsyncIterator[StrapEvent]],
                         recorder: Recorder, duration_s: float | None) -> None:
    """Run ``session`` on ``sources`` with every raw event, command and state recorded.

    The recorder is closed (committed, checkpointed) however the session ends.
    """
    async with recording(session, recorder):
        await session.run(sources, duration_s)


@contextlib.asynccontextmanager
async def recording(session: Any, recorder: Recorder) -> AsyncIterator[Recorder]:
    """Record ``session`` while the block runs (start ``session.run`` inside it).

    Every raw event, marker and command reaches ``recorder.write`` through the session's
    sink, every published state ``recorder.write_state``. On leaving, however that
    happens (end, error, Ctrl+C, SIGTERM), the states already published are written, the
    duration noted, and the file committed and closed. Commands after that (a click on
    a dashboard left open) are no longer recorded.
    """
    clock: Clock = session.clock
    recorder.set_meta("t_origin_s", clock.now())  # Session.run takes its origin now

    def sink(item: Any) -> None:
        if not recorder.closed:
            recorder.write(item)

    session.add_sink(sink)
    tasks = (
        asyncio.create_task(recorder.record_states(session.states), name="coach.record.states"),
        asyncio.create_task(recorder.autocommit(clock.sleep), name="coach.record.commit"),
    )
    try:
        yield recorder
        await asyncio.sleep(0)  # let the state task take the last state
    finally:
        for task in tasks:
            task.cancel()
        # the state task writes what was published before it stopped (its finally)
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("recording %s: %s", recorder.path, result)
        if not recorder.closed:
            recorder.set_meta("duration_s", _duration_s(session, clock))
        recorder.close()


def _duration_s(session: Any, clock: Clock) -> float:
    """The session's length: up to its last state (tasks may end a little after it)."""
    last = session.states.latest
    end = last.t_s if last is not None else clock.now()
    return max(0.0, end - session.t_origin_s)


def default_session_path(started: datetime | None = None) -> Path:
    """A new file for a live session in the folder ``coach sessions`` lists, named by
    its UTC start time (e.g. ``2026-11-25T19-34-12Z.sqlite``)."""
    started = (started or datetime.now(UTC)).astimezone(UTC)
    stem = started.strftime("%Y-%m-%dT%H-%M-%SZ")
    path, n = default_dir() / f"{stem}{SUFFIX}", 1
    while path.exists():
        n += 1
        path = default_dir() / f"{stem}-{n}{SUFFIX}"
    return path


def check_new(path: Path) -> None:
    """Refuse, before anything runs, a recording file that exists already."""
    if path.exists():
        raise RecordingError(f"{path} already exists; choose another file")


def live_recorder(path: Path, session: Any, settings: Mapping[str, Any]) -> Recorder:
    """A recorder for ``session`` (call inside the running loop: it reads the clock)."""
    clock: Clock = session.clock
    return Recorder(path, labels=tuple(session.labels), settings=settings, now=clock.now,
                    t_origin_s=clock.now())


def maybe_recording(session: Any, path: Path | None,
                    settings: Mapping[str, Any]) -> contextlib.AbstractAsyncContextManager[Any]:
    """:func:`recording` of ``session`` to a new file at ``path``; nothing when None.

    The recorder is created on entering (inside the running loop: it reads the clock).
    """
    if path is None:
        return contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Recorder]:
        log.info("recording to %s", path)
        async with recording(session, live_recorder(path, session, settings)) as rec:
            yield rec

    return opened()


async def run_recorded(session: Any, sources: Mapping[str, AsyncIterator[StrapEvent]],
                       duration_s: float | None, path: Path | None,
                       settings: Mapping[str, Any]) -> None:
    """``session.run(sources, duration_s)``, recorded to ``path`` unless it is None."""
    async with maybe_recording(session, path, settings):
        await session.run(sources, duration_s)


async def until_terminated(aw: Awaitable[T]) -> T | None:
    """Await ``aw``; on SIGTERM cancel it, let it clean up, and return None.

    Ctrl+C is asyncio's: it cancels the main task (and so ``aw``) and raises
    KeyboardInterrupt once the cleanup has run.
    """
    loop = asyncio.get_running_loop()
    inner = asyncio.ensure_future(aw)
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        inner.cancel()

    installed = False
    try:
        loop.add_signal_handler(signal.SIGTERM, terminate)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        log.debug("no SIGTERM handler: %s", exc)  # not the main thread, or Windows
    try:
        return await inner
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if terminated and (task is None or task.cancelling() == 0):
            return None  # our own cancellation, on SIGTERM: a clean end
        raise
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)


async def record_simulation(clock: Clock, path: Path, scenario: str, seed: int,
                            duration_s: float) -> Path:
    """Record ``duration_s`` of a simulated couple to ``path``."""
    from coach.wiring import build

    session, world = build(clock, scenario, seed)
    settings = {"source": "simulation", "scenario": scenario, "seed": seed}
    recorder = Recorder(path, labels=tuple(world.labels), settings=settings, now=clock.now,
                        t_origin_s=clock.now())
    sources = world.sources()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(world.run(duration_s), name="sim.world")
        await record_session(session, sources, recorder, duration_s)
    return path


def main(args: argparse.Namespace) -> int:
    if not args.duration > 0:
        print("coach record: --duration must be positive", file=sys.stderr)
        return 2
    try:
        clock = clock_for_speed(args.speed)
        path = args.out if args.out is not None else new_path()
        print(f"coach record: recording to {path}", file=sys.stderr)
        clock.run(record_simulation(clock, path, args.scenario, args.seed, args.duration))
    except (ValueError, RecordingError) as exc:
        print(f"coach record: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"coach record: stopped; saved {path}", file=sys.stderr)
        return 130
    print(path)
    return 0
