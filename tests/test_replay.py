"""Replay reproduces the live session: same states on a virtual clock."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from coach.clock import Clock, VirtualClock
from coach.commands.record import record_session
from coach.commands.replay import replay_states
from coach.recording import Recorder, RecordingReader
from coach.replay import replay_commands, replay_sources, shift_event
from coach.types import Command, HeartRate, Marker

COMMANDS = ((120.0, Command("marker", "rupture", "raised voices")),
            (200.0, Command("pace", 6.0)), (400.0, Command("pace", None)))


async def _live(clock: Clock, path: Path, duration_s: float) -> None:
    from coach.commands.demo import build

    session, world = build(clock, "calm-anchor", 7)
    rec = Recorder(path, labels=tuple(world.labels), now=clock.now, t_origin_s=clock.now())

    async def therapist() -> None:
        for t, cmd in COMMANDS:
            await clock.sleep_until(t)
            session.command(cmd)

    sources = world.sources()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(world.run(duration_s), name="sim.world")
        tg.create_task(therapist(), name="test.therapist")
        await record_session(session, sources, rec, duration_s)


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "live.coach"
    clock = VirtualClock()
    clock.run(_live(clock, path, 600.0))
    return path


def _close(a: Any, b: Any, tol: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, abs_tol=tol)


def test_replay_reproduces_live_states(ten_minutes: Path) -> None:
    with RecordingReader(ten_minutes) as reader:
        live = list(reader.states())
        got: list[dict[str, Any]] = []
        clock = VirtualClock()
        clock.run(replay_states(reader, clock, lambda s, _o: got.append(s.to_json(0.0))))
    assert len(live) == len(got) == 6000
    for a, b in zip(live, got, strict=True):
        assert a["t_s"] == b["t_s"] and a["anchor"] == b["anchor"]
        for label in ("A", "B"):
            pa, pb = a["partners"][label], b["partners"][label]
            assert _close(pa["rate_bpm"], pb["rate_bpm"]), (a["t_s"], label)
            assert _close(pa["calm"], pb["calm"]) and _close(pa["hr_bpm"], pb["hr_bpm"])
        assert (a["pacer"] is None) == (b["pacer"] is None)
        if a["pacer"]:
            assert _close(a["pacer"]["rate_bpm"], b["pacer"]["rate_bpm"])
            assert _close(a["pacer"]["phase"], b["pacer"]["phase"], 1e-4)
            assert a["pacer"]["mode"] == b["pacer"]["mode"]


def test_commands_and_markers_are_reapplied_at_their_times(ten_minutes: Path) -> None:
    with RecordingReader(ten_minutes) as reader:
        applied: list[tuple[float, Command]] = []
        clock = VirtualClock()
        n = clock.run(replay_commands(reader, clock, lambda c: applied.append((clock.now(), c)),
                                      start_s=0.0))
        markers = [e.item for e in reader.entries(("marker",))]
        states = list(reader.states())
    assert n == 3 and applied == list(COMMANDS)
    assert markers == [Marker(120.0, "rupture", "raised voices")]
    modes = {s["pacer"]["mode"] for s in states if s["pacer"] and 210 < s["t_s"] < 390}
    assert modes == {"manual"}


def test_sources_keep_time_on_any_clock_origin(tmp_path: Path) -> None:
    path = tmp_path / "s.coach"
    with Recorder(path, labels=("A",), t_origin_s=100.0) as rec:
        for k in range(5):
            rec.write(HeartRate(100.0 + k, "A", 60.0, (1000.0,), (100.0 + k,)))

    async def collect(clock: Clock) -> list[tuple[float, HeartRate]]:
        with RecordingReader(path) as reader:
            stream = replay_sources(reader, clock, start_s=0.0)["A"]
            return [(clock.now(), e) async for e in stream]

    clock = VirtualClock()
    got = clock.run(collect(clock))
    assert [t for t, _ in got] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [e.beat_t_s for _, e in got] == [(float(k),) for k in range(5)]


def test_shift_event_leaves_commands_alone() -> None:
    cmd = Command("pace", 6.0)
    assert shift_event(cmd, 5.0) is cmd


@pytest.mark.parametrize("first", ["session", "therapist"])
def test_a_command_at_the_moment_of_a_tick_applies_at_the_next(first: str) -> None:
    """Whichever of the two falls due first at that instant (a replay may order them
    otherwise than the live session did), the command takes effect at the next tick."""
    from coach.session import Session

    clock = VirtualClock()

    async def main() -> list[Any]:
        session = Session(clock)
        sub = session.states.subscribe(maxsize=100)

        async def therapist() -> None:
            await clock.sleep_until(0.2)
            session.command(Command("marker", "rupture"))
            session.command(Command("pace", 7.0))

        async with asyncio.TaskGroup() as tg:
            starts = [lambda: tg.create_task(session.run({}, 0.5)),
                      lambda: tg.create_task(therapist())]
            for start in starts if first == "session" else starts[::-1]:
                start()
        assert session.coregulator.fixed_pace_bpm == 7.0
        return [s for s in iter(sub.get_nowait, None)]

    states = clock.run(main())
    assert [round(s.t_s, 6) for s in states] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert [round(s.t_s, 6) for s in states if s.markers] == [0.3]
