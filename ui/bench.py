"""What the windows cost while the pipeline runs: orb late frames, dashboard CPU.

Each figure comes from the real app: the ``triad`` scenario (three simulated Polar
straps with ECG + ACC + HR) read through the real drivers over the simulated bleak
backend, on a :class:`~coach.clock.RealClock`, with the session, the simulator and the
windows on one qasync loop (as ``coach demo`` runs them). Qt renders offscreen (or on an
X display such as Xvfb when one is given).

Two phases run, each in a fresh process so neither inherits the other's Qt state:

- ``orb``: the orb alone (1920x1080, as on a TV);
- ``both``: the orb and the therapist's dashboard, as in a session.

- ``orb_late_frames_percent`` (phase ``both``): share of orb frames that began more than
  one 60 Hz interval (16.7 ms) after they were due, i.e. an interval between consecutive
  orb paints longer than the orb's timer interval plus 16.7 ms (a refresh missed).
- ``orb_cpu_percent`` (phase ``orb``): CPU time of the orb's paint events (the QPainter
  work of every frame; the transfer to the display that follows is not in it), in % of
  one core, at 1920x1080 and 60 fps.
- ``dashboard_cpu_percent``: process CPU time (all threads) of phase ``both`` minus that
  of phase ``orb``, over the same wall time, in % of one core: everything the dashboard
  adds (draining states, ``setData``, layout and painting), not only its refresh slot.

Run alone: ``.venv/bin/python -m ui.bench --seconds 20`` (``--display :77`` for Xvfb).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

REFRESH_HZ = 60.0
WARMUP_S = 2.0  # s before measuring: windows shown, straps connected, first states out
ORB_SIZE = (1920, 1080)  # px: a TV
DASHBOARD_SIZE = (1920, 1080)  # px: the therapist's screen (the largest we support)
HISTORY_S = 3600.0  # s of trend history already on the dashboard: an hour into a session


def frame_figures(starts_s: Sequence[float], timer_ms: float,
                  refresh_hz: float = REFRESH_HZ) -> dict[str, Any]:
    """Late frames and interval percentiles from the start times of consecutive paints.

    A frame is late when it began more than one refresh interval after it was due
    (previous frame + the timer interval).
    """
    t = np.asarray(starts_s, dtype=float)
    gaps_ms = np.diff(t) * 1000.0 if t.size > 1 else np.zeros(0)
    limit_ms = timer_ms + 1000.0 / refresh_hz
    if gaps_ms.size == 0:
        return {"frames": int(t.size), "late_percent": None}
    late = int(np.count_nonzero(gaps_ms > limit_ms))
    span = float(t[-1] - t[0])
    return {
        "frames": int(t.size),
        "fps": round((t.size - 1) / span, 2) if span > 0 else None,
        "late": late,
        "late_percent": round(100.0 * late / gaps_ms.size, 3),
        "late_limit_ms": round(limit_ms, 2),
        "interval_ms": {"p50": round(float(np.percentile(gaps_ms, 50)), 2),
                        "p99": round(float(np.percentile(gaps_ms, 99)), 2),
                        "max": round(float(gaps_ms.max()), 2)},
    }


def prefill_trends(ring: Any, t_end_s: float, history_s: float, seed: int = 0) -> None:
    """Fill a dashboard's trend ring with ``history_s`` of plausible values up to
    ``t_end_s``, so the trend plots draw as many points as late in a long session."""
    from ui import style

    rng = np.random.default_rng(seed)
    n = int(history_s / style.TREND_STEP_S)
    if n < 1:
        return
    t = t_end_s - history_s + style.TREND_STEP_S * np.arange(n)
    slow = np.sin(2 * np.pi * (t - t[0]) / 600.0)
    base = {"pacer_bpm": 6.0 + 0.5 * slow, "breath_ppc": 0.5 + 0.2 * slow,
            "hr_xcorr": 0.3 + 0.2 * slow}
    for name in ring.columns:
        kind = name.split("_")[0]
        center, spread = {"hr": (70.0, 4.0), "rate": (7.0, 1.0), "calm": (0.55, 0.1)}.get(
            kind, (0.0, 0.05))
        values = base.get(name, center + spread * slow)
        base[name] = values + rng.normal(0.0, spread * 0.2, n)
    for k in range(n):
        ring.append(float(t[k]), [float(base[c][k]) for c in ring.columns])


async def _measure(seconds: float, dashboard: bool) -> dict[str, Any]:
    from coach.clock import RealClock
    from coach.wiring import build, strap_sources
    from ui.app import WindowOptions, Windows, serve

    clock = RealClock()
    session, world = build(clock, "triad", 3)
    total_s = WARMUP_S + seconds
    holder: list[Windows] = []
    out: dict[str, Any] = {}

    async def simulate() -> None:
        sources, _ = strap_sources(world, clock, 3)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(world.run(total_s), name="sim.world")
            run = tg.create_task(session.run(sources, total_s), name="coach.session")
            await asyncio.sleep(WARMUP_S)
            orb = holder[0].orb
            assert orb is not None
            dash = holder[0].dashboard
            cpu0, wall0, t0 = time.process_time(), time.perf_counter(), time.perf_counter()
            preempted0 = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
            busy0, paint_cpu0 = orb.paint_busy_s, orb.paint_cpu_s
            refresh0 = dash.refresh_cpu_s if dash is not None else 0.0
            await run
            wall = time.perf_counter() - wall0
            out["cpu_percent"] = round(100.0 * (time.process_time() - cpu0) / wall, 2)
            out["wall_s"] = round(wall, 2)
            # other processes competing for the cores make frames late too: say so
            out["preempted_per_s"] = round(
                (resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - preempted0) / wall, 1)
            out["load_avg_1min"] = round(os.getloadavg()[0], 2)
            starts = [s for s in orb.paint_starts_s if s >= t0]
            out["orb"] = frame_figures(starts, orb.interval_ms)
            out["orb"]["paint_busy_percent"] = round(
                100.0 * (orb.paint_busy_s - busy0) / wall, 2)
            out["orb"]["paint_cpu_percent"] = round(
                100.0 * (orb.paint_cpu_s - paint_cpu0) / wall, 2)
            if dash is not None:
                out["dashboard_refresh_cpu_percent"] = round(
                    100.0 * (dash.refresh_cpu_s - refresh0) / wall, 2)
                out["dashboard_states_seen"] = dash.states_seen

    def opened(windows: Windows) -> None:
        holder.append(windows)
        if windows.orb is not None:
            windows.orb.setGeometry(0, 0, *ORB_SIZE)
        if windows.dashboard is not None:
            windows.dashboard.resize(*DASHBOARD_SIZE)
            prefill_trends(windows.dashboard.trend, clock.now(), HISTORY_S)

    opts = WindowOptions(orb=True, dashboard=dashboard, fullscreen=False,
                         quit_when_done=True, labels=tuple(world.labels))
    code = await serve(session, simulate, opts, on_open=opened)
    if code != 0 or "orb" not in out:
        raise RuntimeError(f"the measured session failed (exit {code})")
    out["session_errors"] = session.errors
    return out


def measure_phase(seconds: float, dashboard: bool) -> dict[str, Any]:
    """One phase in this process (which must not have a Qt loop running yet)."""
    from ui import bridge

    return bridge.run(lambda: _measure(seconds, dashboard))


def run_phase(seconds: float, dashboard: bool, display: str | None = None,
              timeout_s: float | None = None) -> dict[str, Any]:
    """One phase in a fresh process: offscreen, or on X ``display`` (e.g. Xvfb's)."""
    env = dict(os.environ)
    if display:
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    cmd = [sys.executable, "-m", "ui.bench", "--phase", "both" if dashboard else "orb",
           "--seconds", str(seconds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=timeout_s or seconds + 60.0, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"UI bench phase failed: {tail[0]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@contextlib.contextmanager
def xvfb(size: tuple[int, int] = ORB_SIZE, timeout_s: float = 10.0) -> Iterator[str | None]:
    """A private Xvfb server's display name for the block, or None without Xvfb."""
    exe = shutil.which("Xvfb")
    if exe is None:
        yield None
        return
    read, write = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(write), "-screen", "0", f"{size[0]}x{size[1]}x24",
         "-nolisten", "tcp"], pass_fds=(write,),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], timeout_s)
        number = os.read(read, 32).decode().strip() if ready else ""
        yield f":{number}" if number.isdigit() else None
    finally:
        os.close(read)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_ui(seconds: float, display: str | None = None,
             use_xvfb: bool = True) -> dict[str, Any]:
    """``orb_cpu_percent``, ``orb_late_frames_percent`` and ``dashboard_cpu_percent``
    (see the module doc).

    Without ``display``, a private Xvfb renders them when there is one (the X transfer
    of every frame is then part of the cost, as on a real display), else offscreen.
    """
    if display is None and use_xvfb:
        with xvfb() as own:
            if own is not None:
                return bench_ui(seconds, own, use_xvfb=False)
    orb_only = run_phase(seconds, False, display)
    both = run_phase(seconds, True, display)
    return {
        "orb_cpu_percent": orb_only["orb"]["paint_cpu_percent"],
        "orb_late_frames_percent": both["orb"]["late_percent"],
        "dashboard_cpu_percent": round(max(0.0, both["cpu_percent"]
                                           - orb_only["cpu_percent"]), 2),
        "ui_bench": {
            "platform": "xcb (Xvfb)" if display else "offscreen",
            "seconds": seconds,
            "orb_size": list(ORB_SIZE),
            "dashboard_size": list(DASHBOARD_SIZE),
            "orb_with_dashboard": both["orb"],
            "orb_alone": orb_only["orb"],
            "process_cpu_percent": {"orb": orb_only["cpu_percent"],
                                    "orb_and_dashboard": both["cpu_percent"]},
            "dashboard_refresh_slot_cpu_percent": both.get("dashboard_refresh_cpu_percent"),
            "trend_history_s": HISTORY_S,
            "load_avg_1min": {"orb": orb_only["load_avg_1min"],
                              "orb_and_dashboard": both["load_avg_1min"]},
            "preempted_per_s": {"orb": orb_only["preempted_per_s"],
                                "orb_and_dashboard": both["preempted_per_s"]},
            "cores": os.cpu_count(),
        },
    }


UI_TARGETS = {"orb_cpu_percent": 15.0, "orb_late_frames_percent": 1.0,
              "dashboard_cpu_percent": 25.0}


def ui_verdicts(figures: dict[str, Any]) -> dict[str, bool | None]:
    """Each UI figure against its target (None when not measured)."""
    return {k: None if figures.get(k) is None else figures[k] < limit
            for k, limit in UI_TARGETS.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ui.bench", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    p.add_argument("--phase", choices=("orb", "both"), default=None,
                   help="run one phase here and print its JSON (used by bench_ui)")
    p.add_argument("--display", default=None, help="X display to render on (e.g. :77)")
    p.add_argument("--offscreen", action="store_true", help="offscreen even with Xvfb")
    args = p.parse_args(argv)
    if args.phase is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        print(json.dumps(measure_phase(args.seconds, args.phase == "both")))
        return 0
    figures = bench_ui(args.seconds, args.display, use_xvfb=not args.offscreen)
    print(json.dumps(figures | {"targets_met": ui_verdicts(figures)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
