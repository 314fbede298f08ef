"""The one place a session is built from settings: simulated or real straps, a recorder,
an MQTT bridge.

Commands call these functions and hand what they return to the views (``ui.app``
receives a session and a coroutine that runs it; it builds nothing). As the rest of
``coach``, this module imports ``drivers`` and ``sims`` only inside the functions that
need them (docs/architecture.md).

- :func:`build`: a session fed by a simulated world whose people see its orb;
- :func:`strap_sources`: that world's simulated Polar straps, read by the real drivers;
- :func:`strap_session`: a session on real straps, by address;
- :func:`demo_run` / :func:`live_run`: a session ready to run with its straps, recorder
  and MQTT bridge, as one :class:`Wired`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coach.clock import Clock
from coach.session import Session

SIM_UNTIL_CLOSED_S = 12 * 3600.0  # s simulated when a demo with windows runs "until closed"


@dataclass
class Wired:
    """A session, built, and how to run it (recorded and published as asked)."""

    session: Session
    run: Callable[[], Awaitable[None]]
    labels: tuple[str, ...]


def build(clock: Clock, scenario: str, seed: int) -> tuple[Session, Any]:
    """A session fed by a simulated world whose people see that session's orb.

    The world's own event streams (``world.sources()``) skip Bluetooth; use
    :func:`strap_sources` for the real driver path over simulated straps.
    """
    from sims.world import World

    holder: dict[str, Session] = {}

    def orb() -> Any:
        latest = holder["s"].states.latest
        return None if latest is None else latest.pacer

    world = World(scenario, seed, clock, orb=orb)
    session = Session(clock, world.labels)
    holder["s"] = session
    return session, world


# Simulated straps' clocks: seconds apart and drifting, as two real straps are.
_STRAP_CLOCKS = {"A": (3.7, 40.0), "B": (-12.1, -35.0), "T": (0.8, 20.0)}


def strap_sources(world: Any, clock: Clock, seed: int) -> tuple[dict[str, Any], SimStrapSet]:
    """Each person's simulated Polar strap, read by the real driver through bleak.

    Call inside the running loop: fault times are placed from ``clock.now()``.
    Returns the event streams by label, and the straps (counters, draining at the end).
    """
    import random

    import numpy as np

    from drivers.strap import Strap
    from sims.straps import SimFaults, SimRadio, SimStrapSpec, chaos_faults, shifted

    t0 = clock.now()
    specs, straps = [], {}
    for i, label in enumerate(world.labels):
        outages = tuple((t0 + o.start_s, o.duration_s)
                        for o in world.scenario.outages if o.label == label)
        faults = SimFaults(disconnects=outages)
        if label in world.scenario.strap_faults:
            faults = shifted(world.scenario.strap_faults[label], t0)
        if world.scenario.chaos:
            faults = chaos_faults(np.random.default_rng(seed * 100 + i), t0, CHAOS_HORIZON_S)
        offset_s, drift_ppm = _STRAP_CLOCKS.get(label, (0.0, 0.0))
        specs.append(SimStrapSpec(
            f"A0:9E:1A:00:00:{i + 1:02X}", f"Polar H10 SIM{label}", world.signal_source(label),
            clock_offset_s=offset_s, drift_ppm=drift_ppm, faults=faults, seed=seed * 10 + i,
        ))
    radio = SimRadio(clock, specs)
    for i, label in enumerate(world.labels):
        straps[label] = Strap(specs[i].address, label, clock, backend=radio.client_backend,
                              rng=random.Random(seed * 10 + i))
    return {label: strap.events() for label, strap in straps.items()}, SimStrapSet(radio, straps)


CHAOS_HORIZON_S = 48 * 3600.0  # faults are drawn this far ahead
DATA_KINDS = ("hr", "ecg", "acc")  # notifications that carry data (not control responses)


class SimStrapSet:
    """The simulated straps of a session and the drivers reading them."""

    def __init__(self, radio: Any, straps: dict[str, Any]) -> None:
        self.radio, self.straps = radio, straps

    def drain_into(self, session: Session) -> int:
        """Hand events the drivers received but the session did not take yet to it."""
        n = 0
        for label, strap in self.straps.items():
            for event in strap.drain_nowait():
                session.ingest(label, event)
                n += 1
        return n

    def counters(self, t_end_s: float) -> dict[str, Any]:
        """Frames and faults, per label, up to ``t_end_s``."""
        sims_ = {label: self.radio.strap(st.address) for label, st in self.straps.items()}

        def data(counter: Any) -> int:
            return sum(counter[k] for k in DATA_KINDS)

        injected = {k: _faults_injected(s, t_end_s) for k, s in sims_.items()}
        return {
            "frames_intact": {k: data(s.delivered) for k, s in sims_.items()},
            "frames_received": {k: data(st.received) for k, st in self.straps.items()},
            "frames_malformed": {k: st.malformed for k, st in self.straps.items()},
            "connects": {k: st.connects for k, st in self.straps.items()},
            "faults_injected": injected,
        }


def _faults_injected(strap: Any, t_end_s: float) -> dict[str, int]:
    f = strap.spec.faults
    return {
        "disconnects": sum(int(at < t_end_s) for at, _ in f.disconnects),
        "silences": sum(int(at < t_end_s) for at in f.silences),
        "contact_losses": sum(int(at < t_end_s) for at, _ in f.contact_loss),
        "malformed": data_sum(strap.corrupted),
        "lost_notifications": data_sum(strap.dropped),
    }


def data_sum(counter: Any) -> int:
    return sum(counter[k] for k in DATA_KINDS)


def demo_settings(scenario: str, seed: int) -> dict[str, Any]:
    """What a demo recording says about where its events came from."""
    return {"source": "demo", "straps": "simulated Polar H10 via the real drivers",
            "scenario": scenario, "seed": seed}


def demo_run(clock: Clock, scenario: str, seed: int, *, duration_s: float | None,
             record: Path | None, mqtt: argparse.Namespace | None) -> Wired:
    """``coach demo`` with windows: a simulated couple that sees this session's orb,
    through the real drivers, recorded to ``record`` and published as ``mqtt`` asks."""
    from coach.commands.record import run_recorded

    session, world = build(clock, scenario, seed)

    async def run() -> None:
        sources, _ = strap_sources(world, clock, seed)
        publisher = None
        if mqtt is not None and getattr(mqtt, "mqtt", None) is not None:
            from coach.mqtt import bridge_from_args

            publisher = bridge_from_args(session, mqtt)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(duration_s or SIM_UNTIL_CLOSED_S), name="sim.world")
            task = tg.create_task(publisher.run(), name="coach.mqtt") if publisher else None
            await run_recorded(session, sources, duration_s, record,
                               demo_settings(scenario, seed))
            if task is not None:
                task.cancel()

    return Wired(session, run, tuple(world.labels))


def strap_session(addresses: Mapping[str, str], clock: Clock, *, use_pmd: bool = True
                  ) -> tuple[Session, dict[str, AsyncIterator[Any]], dict[str, Any]]:
    """A session on real straps: the session, each strap's event stream, the settings."""
    from drivers.strap import Strap, StrapConfig

    config = StrapConfig(use_pmd=use_pmd)
    straps = {label: Strap(addr, label, clock, config=config) for label, addr in addresses.items()}
    session = Session(clock, labels=tuple(addresses))
    settings = {"source": "straps", "use_pmd": config.use_pmd}
    return session, {k: s.events() for k, s in straps.items()}, settings


def live_run(addresses: Mapping[str, str], clock: Clock, *, use_pmd: bool,
             duration_s: float | None, record: Path | None,
             mqtt: argparse.Namespace | None, emit_json: bool = False) -> Wired:
    """``coach run``: real straps, recorded to ``record``, published as ``mqtt`` asks."""
    from coach.mqtt import bridge_from_args

    session, sources, settings = strap_session(addresses, clock, use_pmd=use_pmd)
    bridge = bridge_from_args(session, mqtt) if mqtt is not None else None

    async def run() -> None:
        await run_session(session, sources, duration_s=duration_s, record=record,
                          settings=settings, emit_json=emit_json, bridge=bridge)

    return Wired(session, run, tuple(addresses))


async def run_session(session: Any, sources: Mapping[str, AsyncIterator[Any]], *,
                      duration_s: float | None, record: Path | None,
                      settings: Mapping[str, Any], emit_json: bool = False,
                      bridge: Any = None) -> None:
    """Run ``session`` on ``sources`` (straps' event streams) until ``duration_s`` or
    cancelled, recorded to ``record`` unless None, printing a JSON state a second and
    publishing to MQTT through ``bridge`` when given."""
    from coach.commands.record import maybe_recording

    async with maybe_recording(session, record, settings), asyncio.TaskGroup() as tg:
        printer = (tg.create_task(_print_states(session), name="coach.run.print")
                   if emit_json else None)
        publisher = tg.create_task(bridge.run(), name="coach.mqtt") if bridge else None
        await session.run(sources, duration_s)
        for task in (printer, publisher):
            if task is not None:
                task.cancel()


async def _print_states(session: Any) -> None:
    last = -1
    async for state in session.states.subscribe():
        second = int(state.t_s - session.t_origin_s)
        if second != last:
            last = second
            print(json.dumps(state.to_json(session.t_origin_s)), flush=True)
