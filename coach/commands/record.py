"""``coach record``: run a session and record it (simulated straps for now).

Live sessions record through the same helpers: ``coach run`` (on by default) and
``coach demo --record`` open a :func:`live_recorder` and await :func:`record_session`
instead of ``Session.run``. :class:`StopSignals` and :func:`until_terminated` give
headless commands the clean close on SIGINT (Ctrl+C), SIGTERM and SIGHUP that the
windows get from :mod:`ui.bridge`: the session ends, the recording is committed and
closed, a summary line is printed, and the exit code is 0.
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
from coach.commands._common import scenario_name, seconds
from coach.recording import SUFFIX, Recorder, RecordingError, default_dir, new_path
from coach.types import StrapEvent

log = logging.getLogger(__name__)
T = TypeVar("T")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sims.scenarios import SCENARIOS

    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help=f"recording file (default: a new file in {default_dir()})")
    p.add_argument("--duration", type=seconds, default=600.0, metavar="S",
                   help="seconds to record (default 600)")
    p.add_argument("--scenario", default="calm-anchor", type=scenario_name, metavar="NAME",
                   help="simulated couple to record (default calm-anchor; listed below)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--speed", default="1", metavar="X|max",
                   help="times faster than real time, or 'max' (default 1)")
    describe_scenarios(p, SCENARIOS)


def describe_scenarios(p: argparse.ArgumentParser, scenarios: Mapping[str, Any]) -> None:
    """List each scenario with its one-line description under the command's --help."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    width = max(len(name) for name in scenarios)
    lines = [f"  {name:<{width}}  {s.description.splitlines()[0]}"
             for name, s in sorted(scenarios.items())]
    p.epilog = "scenarios:\n" + "\n".join(lines)


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
        if recorder.failure is not None:  # a write error stops the session
            raise RecordingError(recorder.failure)
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
            if isinstance(result, Exception) and not isinstance(result, RecordingError):
                log.error("recording %s: %s", recorder.path, result)
        if not recorder.closed:
            recorder.set_meta("duration_s", _duration_s(session, clock))
        recorder.close()  # marks a clean end only if this last commit succeeds
    if recorder.failure is not None:  # the session went on; the recording did not
        raise RecordingError(recorder.failure)


def _duration_s(session: Any, clock: Clock) -> float:
    """The session's length: up to its last state (tasks may end a little after it)."""
    last = session.states.latest
    end = last.t_s if last is not None else clock.now()
    return max(0.0, end - session.t_origin_s)


def default_session_path(started: datetime | None = None) -> Path:
    """A new file for a live session in the folder ``coach sessions`` lists, named by
    its UTC start time (e.g. ``2026-11-25T19-34-12Z.coach``)."""
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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """SIGINT (Ctrl+C), SIGTERM and SIGHUP end a session cleanly while installed.

    ``event`` is set and ``name`` says which signal came; the session's task sees the
    event (:func:`run_until_stopped`) and ends as at its duration: recording closed,
    summary printed, exit code 0.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.name: str | None = None

    @contextlib.contextmanager
    def installed(self) -> Any:
        loop = asyncio.get_running_loop()
        done: list[int] = []
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, self._stop, sig)
                done.append(sig)
            except (NotImplementedError, RuntimeError, ValueError) as exc:
                log.debug("no handler for %s: %s", sig, exc)  # not the main thread, Windows
        try:
            yield self
        finally:
            for sig in done:
                loop.remove_signal_handler(sig)

    def _stop(self, sig: int) -> None:
        self.name = self.name or signal.Signals(sig).name
        self.event.set()

    async def run(self, aw: Awaitable[T]) -> T:
        """Await ``aw`` with the handlers installed."""
        with self.installed():
            return await aw


async def run_until_stopped(session: Any, sources: Mapping[str, AsyncIterator[StrapEvent]],
                            duration_s: float | None, stop: asyncio.Event | None) -> bool:
    """``session.run(sources, duration_s)``, ended early when ``stop`` is set.

    Returns True if it was stopped early.
    """
    if stop is None:
        await session.run(sources, duration_s)
        return False
    run = asyncio.ensure_future(session.run(sources, duration_s))
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
    if not run.cancelled():
        run.result()  # its error, if it failed
        return False
    return True


async def progress(clock: Clock, command: str, duration_s: float | None,
                   every_s: float = 60.0) -> None:
    """A line on stderr per ``every_s`` of session time (run it as a task)."""
    total = f" of {duration_s / 60.0:.0f}" if duration_s is not None else ""
    k = 0
    start = clock.now()
    while True:
        k += 1
        await clock.sleep_until(start + k * every_s)
        print(f"coach {command}: {k * every_s / 60.0:.0f}{total} min", file=sys.stderr,
              flush=True)


async def until_terminated(aw: Awaitable[T]) -> T | None:
    """Await ``aw``; on SIGINT, SIGTERM or SIGHUP cancel it, let it clean up, and
    return None (a clean stop)."""
    stop = StopSignals()
    inner = asyncio.ensure_future(aw)
    stop.event.clear()
    waiter = asyncio.ensure_future(stop.event.wait())
    with stop.installed():
        try:
            await asyncio.wait({inner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not inner.done():
                inner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await inner
    if inner.cancelled():
        return None
    return inner.result()


async def record_simulation(clock: Clock, path: Path, scenario: str, seed: int,
                            duration_s: float, stop: asyncio.Event | None = None
                            ) -> dict[str, Any]:
    """Record ``duration_s`` of a simulated couple to ``path`` (less if ``stop`` is set).

    Returns what was recorded: the session's length and the rows written.
    """
    from coach.wiring import build

    session, world = build(clock, scenario, seed)
    settings = {"source": "simulation", "scenario": scenario, "seed": seed}
    recorder = Recorder(path, labels=tuple(world.labels), settings=settings, now=clock.now,
                        t_origin_s=clock.now())
    sources = world.sources()
    async with asyncio.TaskGroup() as tg:
        sim = tg.create_task(world.run(duration_s), name="sim.world")
        ticker = tg.create_task(progress(clock, "record", duration_s), name="coach.progress")
        async with recording(session, recorder):
            stopped = await run_until_stopped(session, sources, duration_s, stop)
        ticker.cancel()
        if stopped:
            sim.cancel()
    return {"duration_s": _duration_s(session, clock), "events": recorder.rows,
            "stopped": stopped}


def first_error(exc: BaseException, kinds: Any) -> BaseException | None:
    """The first exception of ``kinds`` in ``exc``, looking inside task groups' groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := first_error(inner, kinds)) is not None:
                return found
        return None
    return exc if isinstance(exc, kinds) else None


def main(args: argparse.Namespace) -> int:
    path = args.out if args.out is not None else new_path()
    stop = StopSignals()
    try:
        clock = clock_for_speed(args.speed)
        check_new(path)
    except (ValueError, RecordingError) as exc:
        print(f"coach record: {exc}", file=sys.stderr)
        return 2
    print(f"coach record: recording to {path}", file=sys.stderr)
    try:
        done = clock.run(stop.run(record_simulation(clock, path, args.scenario, args.seed,
                                                    args.duration, stop.event)))
    except (RecordingError, BaseExceptionGroup) as exc:
        err = first_error(exc, RecordingError)
        if err is None:
            raise
        print(f"coach record: {err}", file=sys.stderr)
        return 1 if path.exists() else 2  # 1: a write error stopped the recording
    how = f"stopped by {stop.name}" if done["stopped"] else "done"
    print(f"coach record: {how}: {done['duration_s']:.1f} s of session, "
          f"{done['events']} events saved to {path}", file=sys.stderr)
    print(path)
    return 0
