"""Talking marked from the chest: simulated bouts of talk through the real session.

The simulated people talk in bouts (sims.person, ``talk_share``); their straps' chest
acceleration goes through the session's trackers; the state's ``talking`` flag is
compared with the bouts second by second. No recording of real talk was available:
this is a check on the simulator only (docs/coregulation.md).
"""

from __future__ import annotations

import asyncio
from functools import cache

import numpy as np

from coach.clock import VirtualClock
from coach.commands.demo import build

EDGE_S = 2.0  # seconds at each end of a bout the flag may still be catching up


@cache
def _talk_run(scenario: str = "talking", duration: float = 600.0, seed: int = 1):
    clock = VirtualClock()

    async def main():
        session, world = build(clock, scenario, seed)
        sub = session.states.subscribe(maxsize=100_000)
        sources = world.sources()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(duration))
            await session.run(sources, duration)
        states = []
        while (state := sub.get_nowait()) is not None:
            states.append(state)
        bouts = {k: [(a - world.t0_s, b - world.t0_s) for a, b in p.talk_bouts]
                 for k, p in world.people.items()}
        return [s.to_json(session.t_origin_s) for s in states[9::10]], bouts

    return clock.run(main())


def _seconds(states, bouts, label):
    talk, quiet = [], []
    for s in states:
        t, flag = s["t_s"], s["partners"][label]["talking"]
        if flag is None:
            continue
        inside = any(a + EDGE_S <= t <= b for a, b in bouts[label])
        near = any(a - EDGE_S <= t <= b + EDGE_S for a, b in bouts[label])
        if inside:
            talk.append(flag)
        elif not near:
            quiet.append(flag)
    return np.array(talk), np.array(quiet)


def test_talking_seconds_are_caught_and_quiet_breathing_is_not_flagged() -> None:
    states, bouts = _talk_run()
    parts = [_seconds(states, bouts, label) for label in ("A", "B")]
    talk = np.concatenate([t for t, _ in parts])
    quiet = np.concatenate([q for _, q in parts])
    assert len(talk) > 200 and len(quiet) > 500  # both happen, at some length
    assert talk.mean() >= 0.9
    assert quiet.mean() <= 0.05


def test_nobody_talks_in_a_quiet_session() -> None:
    states, _ = _talk_run("calm-anchor", 400.0)
    flags = [s["partners"][k]["talking"] for s in states[60:] for k in ("A", "B")]
    assert np.mean([f is True for f in flags]) <= 0.05


def test_synchrony_and_calm_leave_talk_out() -> None:
    states, bouts = _talk_run()
    session = states[-1]["synchrony"]["session"]
    assert session["talk_excluded"] is True and session["talk_windows"] >= 1
    # calm holds while a partner talks: it does not move during a long bout
    for label in ("A", "B"):
        for a, b in bouts[label]:
            if b - a >= 20 and b < 590 and a > 200:
                during = [s["partners"][label]["calm"] for s in states
                          if a + 4 <= s["t_s"] <= b - 1]
                assert max(during) - min(during) < 1e-9
