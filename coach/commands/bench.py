"""``coach bench``: speed, latency, CPU and memory of the pipeline on this machine."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="shorter runs (about a minute)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _table(figures: dict[str, Any]) -> str:
    from coach.bench import TARGETS

    rows = [("figure", "value", "target")]
    lat = figures["pipeline_latency_ms"]
    st = figures["state_latency_ms"]
    rows += [
        ("pipeline latency p50 / p99 (ms)", f"{lat['p50']} / {lat['p99']}",
         f"p99 {TARGETS['pipeline_latency_ms.p99'][0]} 5"),
        ("state latency p50 / p99 (ms)", f"{st['p50']} / {st['p99']}", "(10 Hz states)"),
        ("CPU per couple (% of a core)", str(figures["cpu_per_couple_percent"]), "<= 3"),
        ("replay speed (x real time)", str(figures["replay_speed_x"]), ">= 300"),
        ("simulation speed (x real time)", str(figures["sim_speed_x"]), ""),
        (f"memory growth over {figures['memory_hours']} h (MB)",
         str(figures["memory_growth_mb"]), "<= 20"),
    ]
    if "orb_late_frames_percent" in figures:
        rows += [("orb alone, painting (% of a core)", str(figures.get("orb_cpu_percent")),
                  "<= 15"),
                 ("orb late frames (%)", str(figures["orb_late_frames_percent"]), "< 1"),
                 ("dashboard CPU (% of a core)", str(figures["dashboard_cpu_percent"]), "< 25")]
    if "mqtt_state_latency_ms" in figures:
        m = figures["mqtt_state_latency_ms"]
        rows += [("MQTT state latency p50 / p99 (ms)", f"{m['p50']} / {m['p99']}", ""),
                 ("rooms per broker, p99 < 100 ms", str(figures["mqtt_rooms_p99_under_100ms"]),
                  ">= 20")]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)) for r in rows]
    met = figures["targets_met"]
    lines.append("targets met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in met.items()))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from coach.bench import run_all

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    figures = run_all(args.quick, progress)
    print(json.dumps(figures, indent=1) if args.json else _table(figures))
    return 0
