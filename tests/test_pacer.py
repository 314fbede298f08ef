"""The pacer: continuous phase, slew-limited rate, bounds, whatever it is fed."""

from __future__ import annotations

import itertools
import math

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from coach.pacer import Pacer
from coach.types import TWO_PI


def _phase_gap(a: float, b: float) -> float:
    """Smallest forward distance from phase a to phase b."""
    return (b - a) % TWO_PI


def test_rate_moves_toward_target_no_faster_than_one_per_minute() -> None:
    pacer = Pacer(0.0, 12.0)
    rates = [pacer.update(t / 10, 8.0).rate_bpm for t in range(1, 6001)]  # 10 min at 10 Hz
    steps = [abs(b - a) for a, b in itertools.pairwise(rates)]
    assert max(steps) <= 1.0 / 60.0 * 0.1 + 1e-12
    assert rates[(60 * 10) - 1] == pytest.approx(11.0, abs=1e-6)  # one minute: one breath/min
    assert rates[-1] == pytest.approx(8.0)  # reached, and stays


def test_rate_stays_in_bounds() -> None:
    pacer = Pacer(0.0, 30.0)
    assert pacer.state.rate_bpm == 20.0
    for k in range(1, 2000):
        pacer.update(k * 1.0, 1.0)
    assert pacer.state.rate_bpm == 4.5


def test_holding_keeps_the_rate_but_the_orb_keeps_breathing() -> None:
    pacer = Pacer(0.0, 10.0)
    s = pacer.update(30.0, 5.0, holding=True)
    assert s.rate_bpm == 10.0 and s.holding
    assert s.phase0 == pytest.approx((TWO_PI * 10 / 60 * 30) % TWO_PI)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 5.0),  # time step, s
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            st.booleans(),
        ),
        min_size=1,
        max_size=80,
    ),
    st.floats(4.5, 20.0),
)
def test_any_inputs_keep_the_phase_continuous_and_the_rate_slewed(
    steps: list[tuple[float, float | None, bool]], start: float
) -> None:
    pacer = Pacer(0.0, start)
    t = 0.0
    for dt, target, hold in steps:
        before = pacer.state
        t += dt
        after = pacer.update(t, target, holding=hold)
        assert 4.5 <= after.rate_bpm <= 20.0
        assert abs(after.rate_bpm - before.rate_bpm) <= dt / 60.0 + 1e-9
        # the phase advanced exactly by what the previous rate explains: no jump
        expected = (before.phase0 + TWO_PI * before.rate_bpm / 60.0 * dt) % TWO_PI
        gap = min(_phase_gap(expected, after.phase0), _phase_gap(after.phase0, expected))
        assert gap < 1e-6
        assert 0.0 <= after.phase0 < TWO_PI and math.isfinite(after.phase0)
