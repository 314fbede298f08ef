"""``coach bench``: what the pipeline costs on this machine, measured, not asserted.

Each figure is measured by running the real code:

- ``pipeline_latency_ms``: three simulated Polar straps (ECG 130 Hz + ACC 200 Hz + HR)
  read through the real drivers over the simulated bleak backend, in real time; for every
  heart-rate notification, from its arrival at the driver (the time the driver stamps it
  with) to the moment the partner's tracker has taken it in. ``state_latency_ms`` adds
  the wait for the next published SessionState (states are published at 10 Hz).
- ``replay_speed_x`` and ``cpu_per_couple_percent``: a simulated couple's strap events
  for ``minutes`` (ECG + ACC + HR/RR, from sims.person) are recorded to a file, then
  replayed through the whole Session on a virtual clock, :data:`REPLAY_RUNS` times;
  speed = recorded time / wall time of the median run (each run is listed: this machine's
  speed varies by a third from minute to minute); CPU per couple = (CPU time of that run +
  the drivers' parsing cost for the same number of notifications) / recorded time, in %
  of one core.
- ``sim_speed_x``: ``coach demo --headless --speed max`` (simulated straps, drivers and
  pipeline) as a multiple of real time.
- ``memory_growth_mb``: resident memory at the end of a long session in virtual time
  minus that after its first 10 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {
    "pipeline_latency_ms.p99": ("<=", 5.0),
    "mqtt_rooms_p99_under_100ms": (">=", 20.0),
    "cpu_per_couple_percent": ("<=", 3.0),
    "replay_speed_x": (">=", 300.0),
    "memory_growth_mb": ("<=", 20.0),
}


def _pct(values: list[float] | Any, q: float) -> float | None:
    arr = np.asarray(list(values), dtype=float)
    return None if arr.size == 0 else round(float(np.percentile(arr, q)) * 1000.0, 3)


def rss_mb() -> float:
    """Resident set size of this process now, MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform(terse=True)}


# ------------------------------------------------------------------ latency (real time)


async def _latency_run(seconds: float) -> dict[str, Any]:
    from coach.clock import RealClock
    from coach.wiring import build, strap_sources

    clock = RealClock()
    session, world = build(clock, "triad", 3)
    sources, _ = strap_sources(world, clock, 3)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(world.run(seconds), name="sim.world")
        await session.run(sources, seconds)
    return {
        "pipeline_latency_ms": {"p50": _pct(session.ingest_lag_s, 50),
                                "p99": _pct(session.ingest_lag_s, 99),
                                "n": len(session.ingest_lag_s)},
        "state_latency_ms": {"p50": _pct(session.state_lag_s, 50),
                             "p99": _pct(session.state_lag_s, 99)},
        "realtime_cpu_percent_3_straps_with_sim": round(
            100 * (time.process_time() - cpu0) / (time.perf_counter() - wall0), 2),
    }


def bench_latency(seconds: float) -> dict[str, Any]:
    return asyncio.run(_latency_run(seconds))


# ------------------------------------------------------------------ replay and CPU


def _record_couple(path: Path, minutes: float) -> int:
    """Record ``minutes`` of a simulated couple's strap events (no orb) to ``path``."""
    from coach.clock import VirtualClock
    from coach.recording import Recorder
    from sims.world import World

    clock = VirtualClock()
    world = World("calm-anchor", 5, clock)
    count = 0

    async def main() -> None:
        nonlocal count
        sources = world.sources()
        with Recorder(path, labels=world.labels) as rec:
            async def drain(stream: Any) -> None:
                nonlocal count
                async for event in stream:
                    rec.write(event)
                    count += 1

            async with asyncio.TaskGroup() as tg:
                for stream in sources.values():
                    tg.create_task(drain(stream))
                await world.run(minutes * 60.0)

    clock.run(main())
    return count


def _parse_cost_s_per_hour() -> float:
    """CPU seconds the drivers spend parsing one couple's notifications for an hour."""
    from drivers import hrs, pmd
    from sims.straps import encode_acc_frame, encode_ecg_frame, encode_heart_rate_measurement

    rng = np.random.default_rng(0)
    frames = {
        "hr": (encode_heart_rate_measurement(62, (968.75,), True), 3600.0),
        "ecg": (encode_ecg_frame(10**18, np.round(rng.normal(0, 300, 73))), 3600 * 130 / 73),
        "acc": (encode_acc_frame(10**18, np.round(rng.normal(0, 300, (36, 3)))), 3600 * 200 / 36),
    }
    total = 0.0
    for kind, (data, per_hour) in frames.items():
        n = 2000
        t = time.process_time()
        for _ in range(n):
            if kind == "hr":
                hrs.parse_heart_rate_measurement(data)
            else:
                pmd.decode_frame(data)
        total += (time.process_time() - t) / n * per_hour * 2  # two straps
    return total


REPLAY_RUNS = 3


def bench_replay(minutes: float) -> dict[str, Any]:
    import coach.session  # noqa: F401  imported once per process, not part of the rate
    from coach.clock import VirtualClock
    from coach.commands.replay import replay_states
    from coach.recording import RecordingReader

    runs: list[tuple[float, float]] = []  # (wall, cpu) seconds
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "couple.coach"
        events = _record_couple(path, minutes)
        size_mb = path.stat().st_size / 1e6
        for _ in range(REPLAY_RUNS):
            with RecordingReader(path) as reader:
                clock = VirtualClock()
                cpu0, wall0 = time.process_time(), time.perf_counter()
                clock.run(replay_states(reader, clock))
                runs.append((time.perf_counter() - wall0, time.process_time() - cpu0))
    seconds = minutes * 60.0
    parse = _parse_cost_s_per_hour() * seconds / 3600.0
    wall, cpu = sorted(runs)[len(runs) // 2]
    return {
        "replay_speed_x": round(seconds / wall, 1),
        "replay_speed_x_runs": [round(seconds / w, 1) for w, _ in runs],
        "cpu_per_couple_percent": round(100.0 * (cpu + parse) / seconds, 3),
        "replay_events": events,
        "recording_mb_per_hour": round(size_mb * 3600.0 / seconds, 2),
    }


# ------------------------------------------------------------------ simulation speed


def bench_sim(seconds: float) -> dict[str, Any]:
    from coach.clock import VirtualClock
    from coach.commands.demo import run_headless

    clock = VirtualClock()
    wall0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        summary = clock.run(run_headless(clock, "calm-anchor", 1, seconds, emit_json=False))
    return {"sim_speed_x": round(seconds / (time.perf_counter() - wall0), 1),
            "sim_errors": summary["errors"]}


# ------------------------------------------------------------------ memory


def bench_memory(hours: float) -> dict[str, Any]:
    """Resident memory growth of a long couple session (pipeline + simulator)."""
    from coach.clock import VirtualClock
    from coach.session import Session
    from sims.world import World

    clock = VirtualClock()
    marks: dict[str, float] = {}

    async def main() -> None:
        world = World("calm-anchor", 7, clock)
        session = Session(clock, world.labels)
        sources = world.sources()
        sub = session.states.subscribe(maxsize=64)  # a view that never reads: bounded

        async def probe() -> None:
            await clock.sleep(600.0)
            marks["after_10_min"] = rss_mb()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(hours * 3600.0))
            tg.create_task(probe())
            await session.run(sources, hours * 3600.0)
        marks["end"] = rss_mb()
        marks["dropped_by_slow_view"] = sub.dropped

    clock.run(main())
    return {"memory_growth_mb": round(marks["end"] - marks["after_10_min"], 2),
            "memory_hours": hours,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1)}


# ------------------------------------------------------------------ all together


def _get(figures: dict[str, Any], dotted: str) -> Any:
    value: Any = figures
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def verdicts(figures: dict[str, Any]) -> dict[str, bool | None]:
    out: dict[str, bool | None] = {}
    for key, (op, limit) in TARGETS.items():
        v = _get(figures, key)
        out[key] = None if v is None or (isinstance(v, float) and math.isnan(v)) else (
            v <= limit if op == "<=" else v >= limit)
    return out


def bench_mqtt(quick: bool) -> dict[str, Any]:
    """State latency to a remote subscriber and rooms per broker (bench/mqtt_latency.py)."""
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "bench" / "mqtt_latency.py"
    if not script.exists():
        return {"mqtt": "bench/mqtt_latency.py not found (run from a source checkout)"}
    seconds, rooms = ("1.5", "20") if quick else ("2", "40")
    args = ["--seconds", seconds, "--max-rooms", rooms]
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                         text=True, timeout=240, check=False)
    if out.returncode != 0:
        return {"mqtt": f"failed: {out.stderr.strip().splitlines()[-1:]}"}
    res = json.loads(out.stdout)
    one = res["single_room"]
    return {"mqtt_state_latency_ms": {"p50": one["p50_ms"], "p99": one["p99_ms"]},
            "mqtt_rooms_p99_under_100ms": res["max_rooms_p99_under_100ms"]}


def run_all(quick: bool, progress: Any = None) -> dict[str, Any]:
    """Every figure; ``quick`` shortens each run (about a minute in all)."""
    steps = [
        ("latency", lambda: bench_latency(5.0 if quick else 15.0)),
        ("replay", lambda: bench_replay(3.0 if quick else 60.0)),
        ("sim", lambda: bench_sim(120.0 if quick else 900.0)),
        ("memory", lambda: bench_memory(0.2 if quick else 4.0)),
        ("mqtt", lambda: bench_mqtt(quick)),
    ]
    from ui.bench import bench_ui, ui_verdicts  # Qt runs in child processes, not here

    # orb late frames and dashboard CPU: the triad on real drivers, RealClock, windows
    steps.append(("ui", lambda: bench_ui(5.0 if quick else 20.0)))
    figures: dict[str, Any] = {"quick": quick, "machine": machine()}
    for name, step in steps:
        if progress:
            progress(f"bench: {name} ...")
        t = time.perf_counter()
        figures.update(step())
        figures.setdefault("seconds", {})[name] = round(time.perf_counter() - t, 1)
    figures["targets_met"] = verdicts(figures) | ui_verdicts(figures)
    return figures
