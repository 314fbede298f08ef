"""Named scenarios: who the people are and what happens to them over time."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from sims.person import PersonSpec
from sims.straps import SimFaults


@dataclass(frozen=True, slots=True)
class Outage:
    """A strap that is gone (no data at all) from ``start_s`` for ``duration_s``."""

    label: str
    start_s: float
    duration_s: float

    def covers(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class Scenario:
    """People, arousal setpoints over time (piecewise linear), and strap outages."""

    name: str
    description: str
    people: tuple[PersonSpec, ...]
    arousal_schedule: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    outages: tuple[Outage, ...] = ()
    chaos: bool = False  # straps fail at random (see sims.straps.chaos_faults)
    strap_faults: dict[str, SimFaults] = field(default_factory=dict)  # times from the start

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.people)

    def arousal_setpoint(self, label: str, t_s: float, default: float) -> float:
        points = self.arousal_schedule.get(label)
        if not points:
            return default
        ts, values = zip(*points, strict=True)
        return float(np.interp(t_s, ts, values))

    def strap_present(self, label: str, t_s: float) -> bool:
        return not any(o.label == label and o.covers(t_s) for o in self.outages)


_CALM_A = PersonSpec("A", arousal=0.17, compliance=0.12, coupling=0.0, hr_rest_bpm=58.0)
_ACTIVATED_B = PersonSpec(
    "B", arousal=0.83, compliance=0.85, coupling=0.2, hr_rest_bpm=64.0, lean_deg=20.0
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "calm-anchor",
            "A calm near 8/min, B activated near 16/min; B follows the orb.",
            (_CALM_A, _ACTIVATED_B),
        ),
        Scenario(
            "anchor-flip",
            "After the baseline A calms down and anchors; from minute 7 to 8 they trade "
            "places: A activated, B calmer than at their baseline.",
            (
                PersonSpec("A", arousal=0.35, compliance=0.2, hr_rest_bpm=58.0),
                PersonSpec("B", arousal=0.6, compliance=0.2, hr_rest_bpm=64.0, lean_deg=20.0),
            ),
            arousal_schedule={
                "A": ((0.0, 0.35), (140.0, 0.35), (180.0, 0.17), (420.0, 0.17), (480.0, 0.6)),
                "B": ((0.0, 0.6), (420.0, 0.6), (480.0, 0.2)),
            },
        ),
        Scenario(
            "solo",
            "One person, moderately activated, following the orb.",
            (PersonSpec("A", arousal=0.5, compliance=0.7, hr_rest_bpm=62.0),),
        ),
        Scenario(
            "arousal-spike",
            "A calm, B moderately activated; B's arousal jumps at minute 4 for 60 s.",
            (_CALM_A, PersonSpec("B", arousal=0.5, compliance=0.7, hr_rest_bpm=64.0)),
            arousal_schedule={"B": ((0.0, 0.5), (240.0, 0.5), (240.01, 1.0), (300.0, 1.0),
                                    (300.01, 0.5))},
        ),
        Scenario(
            "triad",
            "calm-anchor with the therapist's own strap T: the calmest of all, never the anchor.",
            (_CALM_A, _ACTIVATED_B,
             PersonSpec("T", arousal=0.05, compliance=0.0, hr_rest_bpm=56.0, lean_deg=5.0)),
        ),
        Scenario(
            "uncoupled",
            "Control: two people who each breathe on their own, ignoring the orb and each "
            "other, at different natural rates (synchrony only by chance).",
            (PersonSpec("A", arousal=0.3, compliance=0.0),
             PersonSpec("B", arousal=0.45, compliance=0.0)),
        ),
        Scenario(
            "same-rate",
            "Control: uncoupled as well, but both at the same natural rate (similar rates "
            "are not synchrony).",
            (PersonSpec("A", arousal=0.35, compliance=0.0),
             PersonSpec("B", arousal=0.35, compliance=0.0)),
        ),
        Scenario(
            "orb-only",
            "Control: two people who both lock onto the orb and not onto each other (the orb "
            "explains their synchrony).",
            (PersonSpec("A", arousal=0.3, compliance=0.9),
             PersonSpec("B", arousal=0.45, compliance=0.9)),
        ),
        Scenario(
            "attuned",
            "Two people who ignore the orb but attune to each other's breathing.",
            (PersonSpec("A", arousal=0.3, compliance=0.0, coupling=0.5, phase_coupling=1.5),
             PersonSpec("B", arousal=0.4, compliance=0.0, coupling=0.5, phase_coupling=1.5)),
        ),
        Scenario(
            "talking",
            "calm-anchor while both partners talk about a third of the time, in bouts.",
            (dataclasses.replace(_CALM_A, talk_share=0.3),
             dataclasses.replace(_ACTIVATED_B, talk_share=0.3)),
        ),
        Scenario(
            "chaos",
            "calm-anchor while everything goes wrong: straps drop out, go silent, lose "
            "contact, send malformed frames and lose notifications, at random.",
            (_CALM_A, _ACTIVATED_B),
            chaos=True,
        ),
        Scenario(
            "faulty-b",
            "calm-anchor while B's strap misbehaves: 3 disconnects, 1 % malformed frames, "
            "20 s without skin contact and one link that goes silent.",
            (_CALM_A, _ACTIVATED_B),
            strap_faults={"B": SimFaults(
                disconnects=((100.0, 15.0), (200.0, 10.0), (300.0, 20.0)),
                silences=(400.0,),
                contact_loss=((150.0, 20.0),),
                malformed_fraction=0.01,
            )},
        ),
        Scenario(
            "breathless",
            "Two people whose straps feel no breathing (chest still, no RSA): noise only; "
            "the orb must not follow it.",
            (PersonSpec("A", arousal=0.3, compliance=0.5, depth=0.0),
             PersonSpec("B", arousal=0.5, compliance=0.5, depth=0.0)),
        ),
        Scenario(
            "dropout",
            "As calm-anchor, but B's strap is gone for 45 s from minute 3.",
            (_CALM_A, _ACTIVATED_B),
            outages=(Outage("B", 180.0, 45.0),),
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; a ValueError naming the choices otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(
            f"unknown scenario {name!r}; choose one of: {', '.join(sorted(SCENARIOS))}"
        ) from None
