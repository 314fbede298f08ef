"""``coach replay FILE``: run a recording through the pipeline again."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from coach.clock import Clock, clock_for_speed
from coach.commands._common import open_reader
from coach.commands.record import until_terminated
from coach.recording import RecordingError, RecordingReader
from coach.replay import replay_session


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="a recording")
    p.add_argument("--speed", default="max", metavar="X|max",
                   help="times faster than real time, or 'max' (default max)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON state per second of the session, then a summary")


async def replay_states(reader: RecordingReader, clock: Clock,
                        on_state: Any = None) -> int:
    """Replay ``reader`` on ``clock``; call ``on_state(state, t_origin_s)``; count states."""
    from coach.session import Session

    session = Session(clock, reader.labels)
    sub = session.states.subscribe(maxsize=100_000)
    n = 0

    def drain() -> None:
        nonlocal n
        while (state := sub.get_nowait()) is not None:
            n += 1
            if on_state is not None:
                on_state(state, session.t_origin_s)

    async def consume() -> None:
        while True:  # every second rather than on every state: a replay is busy enough
            await clock.sleep(1.0)
            drain()

    async with asyncio.TaskGroup() as tg:
        consumer = tg.create_task(consume(), name="coach.replay.consume")
        await replay_session(reader, session)
        consumer.cancel()
    drain()
    return n


def main(args: argparse.Namespace) -> int:
    reader = open_reader("replay", args.file)
    if reader is None:
        return 2
    next_s = [1.0]

    def emit(state: Any, origin: float) -> None:
        if args.json and state.t_s - origin + 1e-6 >= next_s[0]:
            next_s[0] += 1.0
            print(json.dumps(state.to_json(origin)))

    seen = [0, 0.0]  # states, session seconds: also known when a signal stops the replay

    def count(state: Any, origin: float) -> None:
        seen[0], seen[1] = seen[0] + 1, state.t_s - origin
        emit(state, origin)

    try:
        clock = clock_for_speed(args.speed)
        done = clock.run(until_terminated(replay_states(reader, clock, count)))
    except (ValueError, RecordingError) as exc:
        print(f"coach replay: {exc}", file=sys.stderr)
        return 2
    finally:
        reader.close()
    how = "stopped by a signal after" if done is None else "replayed"
    if args.json:
        print(json.dumps({"summary": True, "file": str(args.file), "states": seen[0],
                          "duration_s": round(seen[1], 3), "stopped": done is None,
                          "skipped_events": reader.skipped}), flush=True)
    print(f"coach replay: {how} {seen[0]} states ({seen[1]:.1f} s of the session) from "
          f"{args.file}" + (f"; {reader.skipped} damaged events skipped"
                            if reader.skipped else ""), file=sys.stderr)
    return 0
