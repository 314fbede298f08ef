"""MQTT state latency and room capacity through a local Mosquitto (loopback only).

Each simulated room is a real :class:`coach.mqtt.MqttBridge` over a stand-in session that
publishes a two-partner SessionState 10 times a second; states carry the publisher's
``time.monotonic_ns()`` (CLOCK_MONOTONIC is shared by all processes on Linux), and one
subscriber to ``coach/v1/+/state`` (a clinic overview) measures publish -> receive.
Rooms run in 2 worker processes; the step count is bounded. Prints one JSON object.

    .venv/bin/python bench/mqtt_latency.py [--seconds 4] [--max-rooms 80]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coach.bus import Bus
from coach.clock import RealClock
from coach.mqtt import MqttBridge, parse_broker_url
from coach.types import PacerState, PartnerState, SessionState

STEPS = (1, 5, 10, 20, 30, 40, 60, 80, 120)


class _Room:
    def __init__(self) -> None:
        self.clock, self.states, self.t_origin_s = RealClock(), Bus(), 0.0

    def command(self, cmd: object) -> None:
        pass

    async def pump(self) -> None:
        self.t_origin_s = t0 = self.clock.now()
        for k in range(1, 10**9):
            await self.clock.sleep_until(t0 + k / 10)
            t = self.clock.now()
            partners = {lab: PartnerState(lab, "ok", 6.5, 1.0, 0.1, 70.0, 40.0, 0.5, "acc", 0.8, 90)
                        for lab in ("A", "B")}
            self.states.publish(SessionState(t, partners, "A", PacerState(t, 0.5, 6.5),
                                             extra={"bench_ns": time.monotonic_ns()}))


def _worker(port: int, rooms: list[str], seconds: float) -> None:
    async def main() -> None:
        url = parse_broker_url(f"mqtt://127.0.0.1:{port}")
        async with asyncio.TaskGroup() as tg:
            tasks = []
            for name in rooms:
                room = _Room()
                tasks += [tg.create_task(room.pump()),
                          tg.create_task(MqttBridge(room, url, name).run())]
            await asyncio.sleep(seconds)
            for t in tasks:
                t.cancel()
    asyncio.run(main())


async def _measure(port: int, n_rooms: int, seconds: float) -> dict[str, float]:
    import aiomqtt

    lat: list[float] = []
    per_proc = [[f"bench-{i}" for i in range(n_rooms) if i % 2 == w] for w in (0, 1)]
    procs = [mp.Process(target=_worker, args=(port, r, seconds + 1.5)) for r in per_proc if r]
    async with aiomqtt.Client("127.0.0.1", port, max_queued_incoming_messages=0) as c:
        await c.subscribe("coach/v1/+/state")
        for p in procs:
            p.start()
        t_end = time.monotonic() + seconds + 1.0
        warm = time.monotonic() + 1.0  # connections settle first
        try:
            async with asyncio.timeout(seconds + 3.0):
                async for m in c.messages:
                    now = time.monotonic_ns()
                    if time.monotonic() > warm:
                        lat.append((now - json.loads(m.payload)["bench_ns"]) / 1e6)
                    if time.monotonic() > t_end:
                        break
        except TimeoutError:
            pass
    for p in procs:
        p.join(10)
    lat.sort()
    q = (lambda f: round(lat[min(len(lat) - 1, int(f * len(lat)))], 2)) if lat else (lambda f: None)
    expected = n_rooms * 10 * seconds
    return {"rooms": n_rooms, "received": len(lat), "expected_approx": int(expected),
            "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0)}


def _start_mosquitto(d: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = "user root\n" if os.geteuid() == 0 else ""
    (d / "m.conf").write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous true\n"
                              "persistence false\nmax_queued_messages 1000\nset_tcp_nodelay true\n")
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(d / "m.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(250):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("mosquitto did not start")


def _ok(r: dict[str, float]) -> bool:
    """p99 under 100 ms and (almost) every state delivered."""
    return r["p99_ms"] is not None and r["p99_ms"] < 100 and r["received"] >= 0.95 * r[
        "expected_approx"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--max-rooms", type=int, default=80)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        proc, port = _start_mosquitto(Path(d))
        try:
            steps = []
            for n in (s for s in STEPS if s <= args.max_rooms):
                r = asyncio.run(_measure(port, n, args.seconds))
                steps.append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
                if not _ok(r):
                    break
        finally:
            proc.kill()
            proc.wait(5)
    ok = [s for s in steps if _ok(s)]
    print(json.dumps({"broker": "mosquitto 2.0 loopback", "cpus": os.cpu_count(),
                      "single_room": steps[0], "steps": steps,
                      "max_rooms_p99_under_100ms": ok[-1]["rooms"] if ok else 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
