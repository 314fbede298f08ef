"""Shared test setup: offscreen Qt, and a qasync loop for tests marked ``qtloop``."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest


def _qt_loop() -> asyncio.AbstractEventLoop:
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    return qasync.QEventLoop(app)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """A qasync loop (Qt events run while tests await) for ``qtloop`` tests, else plain.

    A firstresult hook: it must answer every async item with a non-empty mapping.
    """
    if item.get_closest_marker("qtloop"):
        return {"qasync": _qt_loop}
    return {"asyncio": asyncio.new_event_loop}


# ------------------------------------------------------------------ UI stand-ins


class ManualClock:
    """A clock the test sets by hand; sleeps really wait (scaled) on the running loop."""

    def __init__(self, t_s: float = 100.0) -> None:
        self.t = t_s

    def now(self) -> float:
        return self.t

    def advance(self, dt_s: float) -> None:
        self.t += dt_s

    async def sleep_until(self, t_s: float) -> None:
        await asyncio.sleep(max(0.0, t_s - self.t) * 0.001)
        self.t = max(self.t, t_s)

    async def sleep(self, dt_s: float) -> None:
        await self.sleep_until(self.t + dt_s)

    def run(self, main: Any) -> Any:
        return asyncio.run(main)


class StandInSession:
    """What the windows use of a Session: a state bus, a clock, commands recorded."""

    def __init__(self, clock: Any | None = None) -> None:
        from coach.bus import Bus

        self.states: Any = Bus()
        self.clock: Any = clock if clock is not None else ManualClock()
        self.t_origin_s = self.clock.now()
        self.commands: list[Any] = []

    def command(self, cmd: Any) -> None:
        self.commands.append(cmd)


@pytest.fixture
def stand_in() -> StandInSession:
    return StandInSession()


def build_state(
    t_s: float,
    *,
    pacer: Any = None,
    anchor: str | None = "A",
    partners: Mapping[str, Mapping[str, Any]] | None = None,
    markers: tuple[Any, ...] = (),
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """A SessionState with two partners whose fields default to a calm, connected couple."""
    from coach.types import PartnerState, SessionState

    base = {"status": "ok", "rate_bpm": 7.0, "phase": 1.0, "breath": 0.2, "hr_bpm": 70.0,
            "rmssd_ms": 40.0, "calm": 0.6, "source": "acc", "quality": 0.8, "battery_pct": 80}
    given = partners if partners is not None else {"A": {}, "B": {}}
    states = {k: PartnerState(label=k, **{**base, **v}) for k, v in given.items()}
    return SessionState(t_s=t_s, partners=states, anchor=anchor, pacer=pacer,
                        markers=markers, extra=dict(extra or {}))


@pytest.fixture
def make_state() -> Callable[..., Any]:
    return build_state
