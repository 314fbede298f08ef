"""Lost straps through the session: the anchor hands over, an unobserved alert keeps holding.

The simulated couple runs in virtual time through the real session (trackers,
co-regulator, pacer); straps drop out as scenario outages.
"""

from __future__ import annotations

import asyncio
import dataclasses
from functools import cache

from coach.clock import VirtualClock
from coach.commands.demo import build
from coach.types import Command
from sims.scenarios import Outage, get_scenario


@cache
def _session(base: str, outage: tuple[str, float, float],
             commands: tuple[tuple[float, str], ...] = (), duration: float = 600.0,
             seed: int = 1) -> list[dict]:
    """One JSON state a second of ``base`` with ``outage`` (label, start, duration)."""
    scenario = dataclasses.replace(get_scenario(base), outages=(Outage(*outage),))
    clock = VirtualClock()

    async def main() -> list[dict]:
        session, world = build(clock, scenario, seed)  # type: ignore[arg-type]
        sub = session.states.subscribe(maxsize=100_000)
        sources = world.sources()

        async def therapist() -> None:
            for at, kind in commands:
                await clock.sleep_until(session.t_origin_s + at)
                session.command(Command(kind))  # type: ignore[arg-type]

        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(duration))
            tg.create_task(therapist())
            await session.run(sources, duration)
        states = []
        while (state := sub.get_nowait()) is not None:
            states.append(state.to_json(session.t_origin_s))
        return states[9::10]

    return clock.run(main())


def _at(states: list[dict], t: float) -> dict:
    return min(states, key=lambda s: abs(s["t_s"] - t))


def test_the_anchor_hands_over_after_60_s_of_lost_data() -> None:
    states = _session("triad", ("A", 300.0, 300.0))
    assert _at(states, 290)["anchor"] == "A"  # the calm partner anchors first
    assert _at(states, 330)["anchor"] == "A"  # a short loss does not move the anchor
    moved = [s["t_s"] for s in states if s["t_s"] > 300 and s["anchor"] == "B"]
    assert moved and moved[0] <= 300 + 60 + 5  # lost after 3 s of silence, then 60 s
    assert all(s["anchor"] != "T" for s in states)  # never the therapist's strap
    assert _at(states, 400).get("anchor_handover") == "A -> B"
    assert not _at(states, 400)["pacer"]["holding"]  # the orb follows B again


def test_an_alerting_partner_lost_keeps_the_orb_holding_until_seen_again() -> None:
    # B's arousal jumps at 240 s; their strap is gone from 250 s to 400 s
    states = _session("arousal-spike", ("B", 250.0, 150.0), duration=480.0)
    assert _at(states, 248)["partners"]["B"]["alert"] is True
    lost = [s for s in states if 256 <= s["t_s"] < 400]
    assert all(s["partners"]["B"]["alert"] is None for s in lost)  # unknown, not "calm"
    assert all(s["pacer"]["holding"] for s in lost)
    rates = [s["pacer"]["rate_bpm"] for s in lost]
    assert max(rates) - min(rates) < 1e-6
    assert isinstance(_at(states, 470)["partners"]["B"]["alert"], bool)  # seen again


def test_the_therapist_releases_the_hold_of_an_unobserved_partner() -> None:
    states = _session("arousal-spike", ("B", 250.0, 150.0), ((300.0, "release-hold"),),
                      duration=480.0)
    assert _at(states, 295)["pacer"]["holding"]
    after = [s for s in states if 302 <= s["t_s"] < 400]
    assert all(s["partners"]["B"]["alert"] is None for s in after)
    assert not any(s["pacer"]["holding"] for s in after)
