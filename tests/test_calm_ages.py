"""Calm against oneself in the closed loop: partners of different ages and fitness.

A partner who becomes clearly calmer than their own baseline takes the anchor from one
who is at theirs, whether the calmer one is the older or the younger partner.
"""

from __future__ import annotations

import asyncio

import pytest

from coach.clock import VirtualClock
from coach.commands.demo import build
from sims.person import aged_spec
from sims.scenarios import Scenario

# A calmer than their baseline from about 2.5 to 5 minutes, then back; B from minute 7
SCHEDULE = {
    "A": ((0.0, 0.45), (130.0, 0.45), (160.0, 0.28), (300.0, 0.28), (330.0, 0.45)),
    "B": ((0.0, 0.45), (400.0, 0.45), (430.0, 0.28)),
}
YOUNG, OLDER = (25.0, 0.8), (66.0, 0.2)  # (age in years, fitness)


def _anchors(a: tuple[float, float], b: tuple[float, float], duration: float = 720.0
             ) -> dict[int, str | None]:
    people = tuple(aged_spec(label, age, fit, arousal=0.45, compliance=0.0)
                   for label, (age, fit) in (("A", a), ("B", b)))
    scenario = Scenario("ages", "test", people, arousal_schedule=SCHEDULE)
    clock = VirtualClock()

    async def main() -> dict[int, str | None]:
        session, world = build(clock, scenario, 4)  # type: ignore[arg-type]
        sub = session.states.subscribe(maxsize=100_000)
        sources = world.sources()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(duration))
            await session.run(sources, duration)
        out = {}
        while (state := sub.get_nowait()) is not None:
            out[round(state.t_s - session.t_origin_s)] = state.anchor
        return out

    return clock.run(main())


def test_people_of_different_ages_differ_in_resting_heart_rate_and_rsa() -> None:
    young, older = aged_spec("A", *YOUNG), aged_spec("B", *OLDER)
    assert older.hr_rest_bpm > young.hr_rest_bpm + 8
    assert older.rsa_bpm < 0.5 * young.rsa_bpm


@pytest.mark.parametrize(("a", "b"), [(YOUNG, OLDER), (OLDER, YOUNG)],
                         ids=["older-becomes-calmer", "younger-becomes-calmer"])
def test_the_partner_calmer_than_their_own_baseline_takes_the_anchor(a, b) -> None:
    anchors = _anchors(a, b)
    assert anchors[125] is None  # both at their baselines: nobody leads
    assert anchors[380] == "A"  # A clearly calmer than their own baseline
    assert anchors[700] == "B"  # A back at theirs, B clearly calmer than their own
