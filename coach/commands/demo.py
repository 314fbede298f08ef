"""``coach demo``: a simulated couple through the whole stack."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from pathlib import Path
from typing import Any

from coach.clock import Clock, clock_for_speed
from coach.session import Session
from coach.types import SessionState
from coach.wiring import SimStrapSet, build, demo_settings, strap_sources

__all__ = ["SimStrapSet", "build", "demo_settings", "main", "run_headless", "strap_sources"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sims.scenarios import SCENARIOS

    p.add_argument("--headless", action="store_true", help="no windows")
    from coach.commands._common import scenario_name, seconds
    from coach.commands.record import describe_scenarios

    p.add_argument("--duration", type=seconds, default=None, metavar="S",
                   help="simulated seconds (default: 900 headless, until closed with windows)")
    p.add_argument("--speed", default="1", metavar="X|max",
                   help="times faster than real time, or 'max' (headless only)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--scenario", default="calm-anchor", type=scenario_name, metavar="NAME",
                   help="who the simulated people are (default calm-anchor; listed below)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON state per simulated second, then a summary")
    p.add_argument("--record", type=Path, default=None, metavar="FILE",
                   help="record the session (raw events, commands, states) to a new FILE")
    add_window_arguments(p)
    from coach.mqtt import add_mqtt_arguments

    add_mqtt_arguments(p)
    describe_scenarios(p, SCENARIOS)


def add_window_arguments(p: argparse.ArgumentParser) -> None:
    """Where the windows go (demo and run)."""
    g = p.add_argument_group("windows")
    g.add_argument("--screen", type=int, default=None, metavar="N",
                   help="display for the orb (default: the last one, e.g. a TV)")
    g.add_argument("--fullscreen", dest="fullscreen", action="store_true", default=None,
                   help="orb full screen (default: only when it has a display of its own)")
    g.add_argument("--windowed", dest="fullscreen", action="store_false", help="orb in a window")
    g.add_argument("--no-orb", action="store_true", help="dashboard only")
    g.add_argument("--no-dashboard", action="store_true", help="orb only")
    words = g.add_mutually_exclusive_group()
    words.add_argument("--no-words", action="store_true",
                       help="no 'in'/'out' words under the orb")
    words.add_argument("--large-words", action="store_true",
                       help="the orb's words twice as large (a TV across the room)")


def window_options(args: argparse.Namespace, labels: tuple[str, ...], *,
                   quit_when_done: bool) -> Any:
    """The windows ``--screen/--fullscreen/--no-orb/...`` ask for (demo and run)."""
    from ui.app import WindowOptions

    return WindowOptions(
        orb=not getattr(args, "no_orb", False),
        dashboard=not getattr(args, "no_dashboard", False),
        screen=getattr(args, "screen", None),
        fullscreen=getattr(args, "fullscreen", None),
        words=not getattr(args, "no_words", False),
        word_scale=2.0 if getattr(args, "large_words", False) else 1.0,
        quit_when_done=quit_when_done,
        labels=labels,
    )


def main(args: argparse.Namespace) -> int:
    try:
        clock = clock_for_speed(args.speed)
    except ValueError as exc:
        print(f"coach demo: {exc}", file=sys.stderr)
        return 2
    from coach.commands.record import StopSignals, check_new
    from coach.recording import RecordingError

    try:
        if args.record is not None:
            check_new(args.record)
    except RecordingError as exc:
        print(f"coach demo: {exc}", file=sys.stderr)
        return 2
    from coach.mqtt import BrokerAuthError, mqtt_problem

    if problem := mqtt_problem(args):  # refused before anything runs
        print(f"coach demo: {problem}", file=sys.stderr)
        return 2
    if not args.headless:
        for flag, given in (("--speed max", args.speed == "max"), ("--json", args.json)):
            if given:
                print(f"coach demo: {flag} needs --headless", file=sys.stderr)
                return 2
        from coach.wiring import demo_run
        from ui.app import run_windows
        from ui.bridge import display_problem

        if problem := display_problem():
            print(f"coach demo: {problem}; use --headless, or run it on a desktop or "
                  "under Xvfb", file=sys.stderr)
            return 2
        wired = demo_run(clock, args.scenario, args.seed, duration_s=args.duration,
                         record=args.record, mqtt=args)
        opts = window_options(args, wired.labels, quit_when_done=args.duration is not None)
        code = run_windows(wired.session, wired.run, opts)
        if args.record is not None and args.record.exists():
            print(f"coach demo: recorded to {args.record}", file=sys.stderr)
        return code
    duration = 900.0 if args.duration is None else args.duration
    stop = StopSignals()
    try:
        summary = clock.run(stop.run(run_headless(
            clock, args.scenario, args.seed, duration, args.json, mqtt=args,
            record=args.record, stop=stop.event, progress_s=60.0)))
    except (RecordingError, ExceptionGroup) as exc:
        from coach.commands.record import first_error

        err = first_error(exc, (RecordingError, BrokerAuthError))
        if err is None:
            raise
        print(f"coach demo: {err}", file=sys.stderr)
        return 3 if isinstance(err, BrokerAuthError) else 1
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(_summary_text(summary))
    if stop.name is not None:
        print(f"coach demo: stopped by {stop.name} after {summary['duration_s']:.0f} s of "
              "the session", file=sys.stderr)
    if args.record is not None:
        print(f"coach demo: recorded to {args.record}", file=sys.stderr)
    return 0


async def run_headless(
    clock: Clock,
    scenario: str,
    seed: int,
    duration_s: float,
    emit_json: bool,
    mqtt: argparse.Namespace | None = None,
    record: Path | None = None,
    stop: asyncio.Event | None = None,
    progress_s: float | None = None,
) -> dict[str, Any]:
    """Run a simulated session; print a JSON state per second; return the summary.

    With ``mqtt`` (parsed ``--mqtt`` options) the session is also published to a broker;
    with ``record`` it is recorded to that new file; setting ``stop`` ends it early
    (a signal), with the same summary. With ``progress_s`` a line goes to stderr every
    that many simulated seconds.
    """
    from coach.commands.record import maybe_recording, progress, run_until_stopped
    from coach.mqtt import bridge_from_args
    from coach.types import AccChunk, EcgChunk, HeartRate

    session, world = build(clock, scenario, seed)
    bridge = bridge_from_args(session, mqtt) if mqtt is not None else None
    handed: dict[str, int] = dict.fromkeys(world.labels, 0)
    broker_gone: dict[str, int] = {"n": 0} if world.scenario.chaos and bridge else {}

    def count(event: Any) -> None:  # every data frame handed to the sinks (the recorder)
        if isinstance(event, HeartRate | EcgChunk | AccChunk):
            handed[event.label] += 1

    session.add_sink(count)
    sub = session.states.subscribe(maxsize=100_000)
    printer = _Printer(session, emit_json)
    sources, sim_straps = strap_sources(world, clock, seed)
    settings = demo_settings(scenario, seed)
    async with maybe_recording(session, record, settings), asyncio.TaskGroup() as tg:
        sim = tg.create_task(world.run(duration_s), name="sim.world")
        ticker = tg.create_task(progress(clock, "demo", duration_s, progress_s),
                                name="coach.progress") if progress_s else None
        consumer = tg.create_task(printer.consume(sub), name="coach.print")
        publisher = tg.create_task(bridge.run(), name="coach.mqtt") if bridge else None
        end = clock.now() + duration_s

        async def freeze_air_at_end() -> None:  # frames after the end belong to no session
            await clock.sleep_until(end)
            sim_straps.radio.freeze()

        freeze = tg.create_task(freeze_air_at_end(), name="sim.freeze")
        churn = None
        if bridge is not None and world.scenario.chaos and bridge.url.embedded:
            churn = tg.create_task(broker_outages(bridge, clock, seed, broker_gone),
                                   name="sim.broker-outages")
        if await run_until_stopped(session, sources, duration_s, stop):
            sim.cancel()
            freeze.cancel()
        if ticker is not None:
            ticker.cancel()
        late = sim_straps.drain_into(session)
        while (state := sub.get_nowait()) is not None:
            printer.take(state)
        consumer.cancel()
        if publisher is not None:
            publisher.cancel()
        if churn is not None:
            churn.cancel()
    counts = sim_straps.counters(clock.now())
    counts["frames_late"] = late
    counts["frames_recorded"] = handed
    if broker_gone:
        counts["broker_outages"] = broker_gone["n"]
        counts["mqtt"] = bridge.snapshot() if bridge is not None else None
    counts["faults_seen"] = {
        label: {"link_losses": tr.losses, "contact_losses": tr.contact_losses,
                "malformed": counts["frames_malformed"][label]}
        for label, tr in session.trackers.items()
    }
    return printer.summary(session, world) | counts


async def broker_outages(bridge: Any, clock: Clock, seed: int, gone: dict[str, int]) -> None:
    """Chaos with ``--mqtt embedded``: the broker goes away now and then, and comes back
    on the same port (the session must go on, the bridge reconnect by itself)."""
    import random

    from coach.broker import BrokerOptions, EmbeddedBroker

    rng = random.Random(seed)
    while True:
        await clock.sleep(rng.uniform(240.0, 480.0))
        if bridge.broker is None or bridge.port is None:
            continue
        await bridge.broker.stop()
        gone["n"] += 1
        await clock.sleep(rng.uniform(10.0, 40.0))
        bridge.broker = EmbeddedBroker(BrokerOptions(port=bridge.port))
        await bridge.broker.start()


class _Printer:
    def __init__(self, session: Session, emit_json: bool) -> None:
        self.session = session
        self.emit_json = emit_json
        self.next_second = 1
        self.states = 0
        self.last: SessionState | None = None

    async def consume(self, sub: Any) -> None:
        async for state in sub:
            self.take(state)

    def take(self, state: SessionState) -> None:
        self.states += 1
        self.last = state
        rel = state.t_s - self.session.t_origin_s
        if rel + 1e-6 >= self.next_second:
            self.next_second = math.floor(rel + 1e-6) + 1
            if self.emit_json:
                print(json.dumps(state.to_json(self.session.t_origin_s)), flush=False)

    def summary(self, session: Session, world: Any) -> dict[str, Any]:
        last = self.last.to_json(session.t_origin_s) if self.last else None
        sys.stdout.flush()
        sync = session.synchrony.session_summary()
        return {
            "summary": True,
            "scenario": world.scenario.name,
            "duration_s": last["t_s"] if last else 0.0,
            "states": self.states,
            "anchor_changes": session.coregulator.chooser.changes,
            "strap_losses": {k: t.losses for k, t in session.trackers.items()},
            "errors": session.errors,
            # share of independent 60 s windows with breath synchrony beyond chance
            "synchrony_beyond_chance_percent": sync["synchrony_beyond_chance_percent"],
            "synchrony_ci95_percent": sync["ci95_percent"],
            "synchrony_windows": sync["windows"],
            "synchrony_windows_beyond_chance": sync["windows_beyond_chance"],
            "final": last,
        }


def _summary_text(summary: dict[str, Any]) -> str:
    def num(x: Any, fmt: str, unknown: str = "unknown") -> str:
        return unknown if x is None else format(x, fmt)

    final = summary.get("final") or {}
    lines = [f"scenario {summary['scenario']}: {summary['duration_s']:.0f} s simulated"]
    for label, p in (final.get("partners") or {}).items():
        calm = num(p["calm"], ".2f", "not yet (2-minute baseline)")
        lines.append(f"  {label}: breathing {num(p['rate_bpm'], '.1f')}/min, heart "
                     f"{num(p['hr_bpm'], '.0f')} bpm, calm {calm}, strap {p['status']}")
    pacer = final.get("pacer") or {}
    lines.append(f"  orb: {num(pacer.get('rate_bpm'), '.1f')}/min, "
                 f"anchor {final.get('anchor') or 'not chosen yet'}")
    return "\n".join(lines)
