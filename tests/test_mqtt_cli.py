"""The MQTT commands as a user runs them: ``coach rooms``, ``coach broker`` and the
``--mqtt`` safety rule, each a real subprocess against a broker on 127.0.0.1.

Subprocesses run with an audit hook that refuses (and reports) any socket connection or
name lookup beyond loopback, so a test of the safety rule can never send a packet
anywhere else, and proves that nothing was even tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
from mqtt_fixtures import PASSWORD, USER, Mosquitto, poll_until
from test_mqtt_session import ROOM, bridge_to, live_session

from coach.mqtt.link import make_client

pytest_plugins = ["conftest_mqtt"]

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 30.0

# Runs ``coach.cli`` with a guard: a connect or lookup to a non-loopback address is
# refused before it happens and reported on stderr.
GUARDED_CLI = textwrap.dedent("""
    import ipaddress, sys

    def loopback(host):
        try:
            return ipaddress.ip_address(str(host).strip("[]")).is_loopback
        except ValueError:
            return str(host) in ("localhost", "")

    def guard(event, args):
        host = None
        if event == "socket.connect" and isinstance(args[1], tuple):
            host = args[1][0]
        elif event == "socket.getaddrinfo":
            host = args[0]
        if host is not None and not loopback(host):
            sys.stderr.write(f"GUARD: blocked {event} to {host}\\n")
            raise ConnectionRefusedError(f"test guard: no {event} to {host}")

    sys.addaudithook(guard)
    from coach.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_MQTT_")}
    return {**env, "PYTHONWARNINGS": "error::ResourceWarning", **extra}


async def coach(*args: str, env: dict[str, str] | None = None) -> Run:
    """``coach ARGS`` in a subprocess (guarded), without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", GUARDED_CLI, *args, cwd=ROOT, env=env or cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def one_clean_line(run: Run, *secrets: str) -> str:
    """The single stderr line of a failed command: no traceback, no secret, no guard hit."""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr and "GUARD" not in run.stderr
    for secret in secrets:
        assert secret not in run.stdout + run.stderr
    return lines[0]


# ------------------------------------------------------------------ coach rooms


async def test_rooms_lists_a_live_room(mosquitto: Mosquitto) -> None:
    url = mosquitto.handle.url()
    env = cli_env(COACH_MQTT_PASSWORD=PASSWORD)
    where = f"mqtt://{USER}@127.0.0.1:{mosquitto.port}"
    async with asyncio.timeout(TIMEOUT_S), live_session(bridge_to(url)) as live:
        await poll_until(lambda: len(live.bridge.label_health) == 2 and all(
            h.connected for h in live.bridge.label_health.values()), 10.0)
        text, as_json = await asyncio.gather(coach("rooms", "--mqtt", where, env=env),
                                             coach("rooms", "--mqtt", where, "--json", env=env))
    for run in (text, as_json):
        assert run.returncode == 0, run.stderr
        assert run.stderr == "" and PASSWORD not in run.stdout
    line = text.stdout.strip()
    assert re.fullmatch(rf"{ROOM}\s+online\s+control=off\s+A:ok\(\d+%\) B:ok\(\d+%\)", line), line
    (room,) = json.loads(as_json.stdout)
    assert room["room"] == ROOM and room["online"] is True and room["control"] is False
    assert {k: v["status"] for k, v in room["partners"].items()} == {"A": "ok", "B": "ok"}


async def test_wrong_credentials_give_one_clear_line(mosquitto: Mosquitto) -> None:
    wrong = "wrong-horse-17"
    port = mosquitto.port
    rooms, demo = await asyncio.gather(
        coach("rooms", "--mqtt", f"mqtt://{USER}@127.0.0.1:{port}",
              env=cli_env(COACH_MQTT_PASSWORD=wrong)),
        # a password in the URL is still never printed
        coach("demo", "--headless", "--speed", "5", "--duration", "30",
              "--mqtt", f"mqtt://{USER}:{wrong}@127.0.0.1:{port}"),
    )
    for run, code in ((rooms, 2), (demo, 3)):
        assert run.returncode == code, run.stderr
        line = one_clean_line(run, wrong, PASSWORD)
        assert "wrong user name or password" in line and repr(USER) in line, line
        assert f"127.0.0.1:{port}" in line
    assert rooms.stderr.startswith("coach rooms: ") and demo.stderr.startswith("coach demo: ")


# ------------------------------------------------------------------ coach broker


@contextlib.asynccontextmanager
async def broker_process(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """``coach broker ARGS`` running; yields it and the port it reports."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", GUARDED_CLI, "broker", *args, cwd=ROOT, env=cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(15):
            first = (await proc.stderr.readline()).decode()
        found = re.search(r"listening on 127\.0\.0\.1 port (\d+)", first)
        assert found is not None, first
        yield proc, int(found.group(1))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_broker_serves_on_a_free_loopback_port() -> None:
    async with asyncio.timeout(TIMEOUT_S), broker_process("--port", "0") as (proc, port):
        assert port not in (0, 1883)
        topic = f"coach/v1/{ROOM}/presence"
        async with aiomqtt.Client("127.0.0.1", port, identifier="test-pub") as pub:
            await pub.publish(topic, b'{"online":true}', qos=1, retain=True)
        async with aiomqtt.Client("127.0.0.1", port, identifier="test-sub") as sub:
            await sub.subscribe(topic, qos=1)
            message = await anext(aiter(sub.messages))
        assert message.retain and json.loads(message.payload) == {"online": True}
        proc.send_signal(signal.SIGINT)  # Ctrl+C
        _, err = await proc.communicate()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"GUARD" not in err


# ------------------------------------------------------------------ the safety rule


async def test_plaintext_beyond_loopback_is_refused_before_any_connection() -> None:
    remote = "mqtt://10.0.0.1:1883"
    runs = await asyncio.gather(
        coach("demo", "--headless", "--duration", "5", "--mqtt", remote),
        coach("rooms", "--mqtt", remote),
        coach("dashboard", "--mqtt", remote, "--room", ROOM),
        coach("demo", "--headless", "--duration", "5",
              "--mqtt", f"mqtt://{USER}:{PASSWORD}@10.0.0.1:1883"),
    )
    for run in runs:
        assert run.returncode == 2, run.stderr
        line = one_clean_line(run, PASSWORD)
        assert "refusing a plaintext" in line and "10.0.0.1" in line and "--insecure" in line
    assert "anonymous" in runs[0].stderr and "anonymous" not in runs[3].stderr
    assert all(run.stdout == "" for run in runs)


async def test_rooms_prints_what_others_left_escaped(mosquitto: Mosquitto) -> None:
    """A retained status full of escape sequences (clear screen, a forged room line, a
    window title) is printed escaped, on the room's one line."""
    nasty = "\x1b[2J\u202e\x1b]0;pwned\x07ok\nroom-9 online"
    async with make_client(mosquitto.handle.url(), name="test-nasty") as c:
        await c.publish("coach/v1/room-8/presence", b'{"online":true}', qos=1, retain=True)
        await c.publish("coach/v1/room-8/status/A",
                        json.dumps({"status": nasty, "battery_pct": "\x1b[31m"}), qos=1,
                        retain=True)
    run = await coach("rooms", "--mqtt", f"mqtt://{USER}@127.0.0.1:{mosquitto.port}",
                      env=cli_env(COACH_MQTT_PASSWORD=PASSWORD))
    assert run.returncode == 0, run.stderr
    (line,) = run.stdout.splitlines()
    assert line.startswith("room-8 ") and not re.search(r"[\x00-\x1f\x7f\u202e]", line), line
    assert r"A:\x1b[2J\u202e\x1b]0;pwned\x07ok\nroom-9 online" in line
    assert r"(\x1b[31m%)" in line
