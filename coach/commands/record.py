"""``coach record``: run a session and record it (simulated straps for now).

Real straps are wired in by the command that connects them: it builds a
:class:`~coach.session.Session` and its sources and awaits :func:`record_session`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from coach.clock import Clock, clock_for_speed
from coach.recording import Recorder, RecordingError, default_dir, new_path
from coach.types import StrapEvent


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
    clock: Clock = session.clock
    recorder.set_meta("t_origin_s", clock.now())  # Session.run takes its origin now
    session.add_sink(recorder.write)
    try:
        async with asyncio.TaskGroup() as tg:
            states = tg.create_task(recorder.record_states(session.states),
                                    name="coach.record.states")
            commits = tg.create_task(recorder.autocommit(clock.sleep),
                                     name="coach.record.commit")
            await session.run(sources, duration_s)
            await asyncio.sleep(0)  # let the state task take the last state
            states.cancel()
            commits.cancel()
        recorder.set_meta("duration_s", clock.now() - session.t_origin_s)
    finally:
        recorder.close()


async def record_simulation(clock: Clock, path: Path, scenario: str, seed: int,
                            duration_s: float) -> Path:
    """Record ``duration_s`` of a simulated couple to ``path``."""
    from coach.commands.demo import build

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
