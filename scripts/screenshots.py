"""Render the orb and the therapist dashboard offscreen from a simulated session.

A simulated couple runs through the whole stack on a virtual clock (seeded, so the
pictures are reproducible), with a few markers set as a therapist would; its states
are then fed to the real windows, which are grabbed at 1920x1080, 1366x768 and 1280x720::

    python scripts/screenshots.py                  # docs/img/{orb,dashboard}[-WxH].png
    python scripts/screenshots.py --scenario calm-anchor --at 300 --out out/shots
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from coach.bus import Bus  # noqa: E402
from coach.clock import VirtualClock  # noqa: E402
from coach.types import Command, SessionState  # noqa: E402

SIZES = ((1920, 1080, ""), (1366, 768, "-1366x768"), (1280, 720, "-1280x720"))
# (simulated second, marker kind, note): what a therapist might mark
MARKS = ((70.0, "eye contact", ""), (130.0, "rupture", "B: 'you never listen'"),
         (165.0, "repair", "A reaches for B's hand"), (175.0, "touch", ""),
         (260.0, "eye contact", "they look up together"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    p.add_argument("--scenario", default="faulty-b")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--at", type=float, default=305.0, help="simulated second to grab at")
    return p.parse_args(argv)


def simulate(scenario: str, seed: int, until_s: float) -> tuple[list[SessionState], float]:
    """Every state of a simulated session, and its origin time (virtual clock)."""
    from coach.wiring import build, strap_sources

    clock = VirtualClock()

    async def run() -> tuple[list[SessionState], float]:
        session, world = build(clock, scenario, seed)
        sub = session.states.subscribe(maxsize=1_000_000)
        origin = clock.now()

        async def mark() -> None:
            for t_s, kind, note in MARKS:
                if t_s < until_s:
                    await clock.sleep_until(origin + t_s)
                    session.command(Command(kind="marker", value=kind, note=note))

        sources, _ = strap_sources(world, clock, seed)  # the real drivers, simulated straps
        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(until_s + 1.0), name="sim.world")
            tg.create_task(mark(), name="sim.therapist")
            await session.run(sources, until_s)
        states = []
        while (state := sub.get_nowait()) is not None:
            states.append(state)
        return states, session.t_origin_s

    return clock.run(run())


class Replay:
    """A finished session's states, offered to the windows as if live."""

    def __init__(self, t_origin_s: float) -> None:
        self.states: Bus[SessionState] = Bus()
        self.t_origin_s = t_origin_s
        self.t = t_origin_s
        self.clock = self

    def now(self) -> float:
        return self.t

    def command(self, cmd: Command) -> None:
        pass


def render(states: list[SessionState], t_origin_s: float, out: Path) -> list[Path]:
    from ui.dashboard import TherapistDashboard
    from ui.orb import OrbWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    replay = Replay(t_origin_s)
    labels = tuple(sorted(states[-1].partners))
    dash = TherapistDashboard(replay, labels=labels, on_start=lambda: None,
                              on_stop=lambda: None)  # type: ignore[arg-type]
    orb = OrbWindow(replay, fps=30)  # type: ignore[arg-type]
    dash.set_running(True)
    for k, state in enumerate(states):
        replay.t = state.t_s
        replay.states.publish(state)
        if k % 50 == 0:
            dash.tick()
    for _ in range(5):  # the trend plots redraw one per frame
        dash.tick()
    replay.t = states[-1].t_s + 0.05
    saved = grab_all(app, out, {"dashboard": dash, "orb": orb})
    dash.close()
    orb.close()
    return saved


def grab_all(app: Any, out: Path, windows: dict[str, QWidget]) -> list[Path]:
    """Every window at every size, after letting it lay out and redraw."""
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for width, height, suffix in SIZES:
        for name, w in windows.items():
            w.resize(width, height)
            w.show()
            for _ in range(5):
                app.processEvents()
            path = out / f"{name}{suffix}.png"
            if not w.grab().save(str(path)):
                raise OSError(f"could not write {path}")
            saved.append(path)
    return saved


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    states, origin = simulate(args.scenario, args.seed, args.at)
    if not states:
        print("the simulation published no states", file=sys.stderr)
        return 1
    for path in render(states, origin, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
