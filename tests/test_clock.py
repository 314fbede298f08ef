"""Clocks: virtual time jumps to deadlines, keeps order, and scaled time is exact."""

from __future__ import annotations

import asyncio
import time

import pytest

from coach.clock import RealClock, VirtualClock, VirtualTimeLoop, clock_for_speed


def test_virtual_clock_sleeps_450_s_in_well_under_a_second() -> None:
    clock = VirtualClock()

    async def main() -> float:
        await clock.sleep(450.0)
        return clock.now()

    started = time.perf_counter()
    assert clock.run(main()) == pytest.approx(450.0)
    assert time.perf_counter() - started < 1.0


def test_virtual_clock_wakes_tasks_in_deadline_order() -> None:
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, t: float) -> None:
        await clock.sleep_until(t)
        woke.append((name, clock.now()))

    async def main() -> None:
        await asyncio.gather(sleeper("late", 30.0), sleeper("early", 2.5), sleeper("mid", 10.0))

    clock.run(main())
    assert [n for n, _ in woke] == ["early", "mid", "late"]
    assert [t for _, t in woke] == pytest.approx([2.5, 10.0, 30.0])


def test_virtual_clock_sleep_until_the_past_returns_at_once() -> None:
    clock = VirtualClock()

    async def main() -> float:
        await clock.sleep(5.0)
        await clock.sleep_until(1.0)
        return clock.now()

    assert clock.run(main()) == pytest.approx(5.0)


def test_virtual_loop_still_runs_asyncio_timeouts_in_virtual_time() -> None:
    clock = VirtualClock()

    async def main() -> bool:
        try:
            async with asyncio.timeout(60.0):
                await asyncio.Event().wait()
        except TimeoutError:
            return clock.now() >= 60.0
        return False

    assert clock.run(main())


def test_sped_up_clock_runs_faster_than_its_loop_by_its_speed() -> None:
    loop = VirtualTimeLoop()
    clock = RealClock(speed=50.0)

    async def main() -> tuple[float, float]:
        t0_loop, t0 = loop.time(), clock.now()
        await clock.sleep(100.0)
        return loop.time() - t0_loop, clock.now() - t0

    try:
        loop_dt, clock_dt = loop.run_until_complete(main())
    finally:
        loop.close()
    assert clock_dt == pytest.approx(100.0, abs=1e-6)
    assert loop_dt == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("bad", ["0", "-3", "fast", "nan"])
def test_clock_for_speed_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ValueError):
        clock_for_speed(bad)


def test_clock_for_speed_max_is_virtual() -> None:
    assert isinstance(clock_for_speed("max"), VirtualClock)
    assert clock_for_speed("2").speed == 2.0  # type: ignore[attr-defined]
