"""Does a change leave every session state as it was? A check for speed work.

Records a few simulated sessions once (into ``--dir``, kept for the next run), replays
each through the whole Session on a virtual clock and prints, per recording, the number
of states and a hash of all of them at full precision (``repr``: every float to the
last bit). Run it on two commits and compare the lines:

    .venv/bin/python bench/same_states.py --dir /tmp/states          # this checkout
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/same_states.py --dir /tmp/states

The recordings are made by whichever code runs first; both runs then replay the same
files. One of them has its chest motion deleted, so that ECG is the breathing source.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sqlite3
import time
from pathlib import Path

from coach.clock import VirtualClock
from coach.commands.replay import replay_states
from coach.recording import Recorder, RecordingReader
from sims.world import World

CASES = (("calm-anchor", 5, 900.0), ("talking", 2, 600.0), ("chaos", 3, 600.0),
         ("attuned", 4, 600.0), ("breathless", 1, 400.0))


def record(path: Path, scenario: str, seed: int, seconds: float) -> None:
    clock = VirtualClock()
    world = World(scenario, seed, clock)

    async def main() -> None:
        sources = world.sources()
        with Recorder(path, labels=world.labels) as rec:
            async def drain(stream: object) -> None:
                async for event in stream:  # type: ignore[attr-defined]
                    rec.write(event)

            async with asyncio.TaskGroup() as tg:
                for stream in sources.values():
                    tg.create_task(drain(stream))
                await world.run(seconds)

    clock.run(main())


def recordings(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for scenario, seed, seconds in CASES:
        path = folder / f"{scenario}-{seed}.coach"
        if not path.exists():
            record(path, scenario, seed, seconds)
        paths.append(path)
    ecg = folder / "calm-anchor-5-ecg-only.coach"
    if not ecg.exists():
        ecg.write_bytes(paths[0].read_bytes())
        with sqlite3.connect(ecg) as db:
            db.execute("DELETE FROM events WHERE kind='acc'")
    return [*paths, ecg]


def replay(path: Path) -> list[str]:
    """``repr`` of every state of a replay of ``path``."""
    states: list[str] = []
    with RecordingReader(path) as reader:
        clock = VirtualClock()
        clock.run(replay_states(reader, clock, lambda s, _origin: states.append(repr(s))))
    return states


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True, help="folder of the recordings")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the polarity notes of the simulated straps
    for path in recordings(args.dir):
        t = time.perf_counter()
        states = replay(path)
        wall = time.perf_counter() - t
        digest = hashlib.sha256("\n".join(states).encode()).hexdigest()[:16]
        print(f"{path.stem}: {len(states)} states, sha256 {digest}  ({wall:.1f} s)")


if __name__ == "__main__":
    main()
