"""Lost straps through the session: the anchor hands over, an unobserved alert keeps holding.

The simulated couple runs in virtual time through the real session (trackers,
co-regulator, pacer); straps drop out as scenario outages.
"""

from __future__ import annotations

import asyncio
from functools import cache

from coach.clock import VirtualClock
from coach.commands.demo import build
from coach.types import Command
from sims.person import PersonSpec
from sims.scenarios import Outage, Scenario

# A calms down after the baseline and anchors from about minute 4; B stays as at their
# baseline, or (SPIKE) is activated sharply from 270 s for a minute; T is the therapist
PEOPLE = (PersonSpec("A", arousal=0.35, compliance=0.2, hr_rest_bpm=58.0),
          PersonSpec("B", arousal=0.5, compliance=0.0, hr_rest_bpm=64.0),
          PersonSpec("T", arousal=0.05, compliance=0.0, hr_rest_bpm=56.0))
CALMING_A = {"A": ((0.0, 0.35), (140.0, 0.35), (180.0, 0.17))}
SPIKE = {**CALMING_A, "B": ((0.0, 0.5), (270.0, 0.5), (270.01, 1.0), (330.0, 1.0),
                            (330.01, 0.5))}


@cache
def _session(spike: bool, outage: tuple[str, float, float],
             commands: tuple[tuple[float, str], ...] = (), duration: float = 600.0,
             seed: int = 1) -> list[dict]:
    """One JSON state a second with ``outage`` (label, start, duration)."""
    scenario = Scenario("handover", "test", PEOPLE if not spike else PEOPLE[:2],
                        arousal_schedule=SPIKE if spike else CALMING_A,
                        outages=(Outage(*outage),))
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
    states = _session(False, ("A", 300.0, 300.0))
    assert _at(states, 290)["anchor"] == "A"  # calmer than their own baseline: anchor
    assert _at(states, 330)["anchor"] == "A"  # a short loss does not move the anchor
    assert _at(states, 330)["pacer"]["holding"]  # meanwhile the orb holds
    moved = [s["t_s"] for s in states if s["t_s"] > 300 and s["anchor"] == "B"]
    assert moved and moved[0] <= 300 + 60 + 5  # lost after 3 s of silence, then 60 s
    assert all(s["anchor"] != "T" for s in states)  # never the therapist's strap
    assert _at(states, 400).get("anchor_handover") == "A -> B"
    late = _at(states, 400)  # no longer held for the lost anchor (an alert may still hold)
    assert late["partners"]["B"]["trusted"]
    assert not (late["pacer"]["holding"] and late["pacer"]["mode"] == "follow")


def test_an_alerting_partner_lost_keeps_the_orb_holding_until_seen_again() -> None:
    # B's arousal jumps at 270 s; their strap is gone from 280 s to 430 s
    states = _session(True, ("B", 280.0, 150.0), duration=510.0)
    assert _at(states, 278)["anchor"] == "A"
    assert _at(states, 278)["partners"]["B"]["alert"] is True
    lost = [s for s in states if 286 <= s["t_s"] < 430]
    assert all(s["partners"]["B"]["alert"] is None for s in lost)  # unknown, not "calm"
    assert all(s["pacer"]["holding"] for s in lost)
    rates = [s["pacer"]["rate_bpm"] for s in lost]
    assert max(rates) - min(rates) < 1e-6
    assert isinstance(_at(states, 500)["partners"]["B"]["alert"], bool)  # seen again


def test_the_therapist_releases_the_hold_of_an_unobserved_partner() -> None:
    states = _session(True, ("B", 280.0, 150.0), ((330.0, "release-hold"),), duration=510.0)
    assert _at(states, 325)["pacer"]["holding"]
    after = [s for s in states if 332 <= s["t_s"] < 430]
    assert all(s["partners"]["B"]["alert"] is None for s in after)
    assert not any(s["pacer"]["holding"] for s in after)
