"""The MQTT commands as a user runs them: ``coach rooms``, ``coach broker`` and the
``--mqtt`` safety rule, each a real subprocess against a broker on 127.0.0.1.

Subprocesses run with an audit hook that refuses (and reports) any socket connection or
name lookup beyond loopback, so a test of the safety rule can never send a packet
anywhere else, and proves that nothing was even tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from mqtt_fixtures import (
    PASSWORD,
    USER,
    BrokerHandle,
    Certs,
    Mosquitto,
    clinic_password,
    poll_until,
)
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
async def broker_process(*args: str, command: str = "broker",
                         says: str = r"listening on 127\.0\.0\.1 port (\d+)",
                         ) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """``coach broker ARGS`` (or another command) running; yields it and the port its
    first stderr line names (the first group of ``says``)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", GUARDED_CLI, command, *args, cwd=ROOT, env=cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(15):
            first = (await proc.stderr.readline()).decode()
        found = re.search(says, first)
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


async def test_broker_without_plaintext_names_its_tls_port(certs: Certs) -> None:
    from coach.mqtt.remote import check_login
    from coach.mqtt.url import BrokerURL

    async with (asyncio.timeout(TIMEOUT_S),
                broker_process("--no-plaintext", "--tls-port", "0", "--cert", str(certs.cert),
                               "--key", str(certs.key),
                               says=r"coach broker: listening on 127\.0\.0\.1 TLS port (\d+)"
                               ) as (_, port)):
        await check_login(BrokerURL("mqtts", "127.0.0.1", port, ca_file=str(certs.ca)))


async def test_demo_with_an_embedded_broker_prints_how_to_watch_it() -> None:
    """``coach demo --mqtt embedded`` prints the dashboard command first; it works."""
    async with (asyncio.timeout(TIMEOUT_S),
                broker_process("--headless", "--speed", "2", "--duration", "60", "--json",
                               "--mqtt", "embedded", command="demo",
                               says=r"dashboard: coach dashboard --mqtt "
                                    r"mqtt://127\.0\.0\.1:(\d+)/room-1") as (proc, port)):
        async with aiomqtt.Client("127.0.0.1", port, identifier="test-watch") as sub:
            await sub.subscribe("coach/v1/room-1/state")
            message = await anext(aiter(sub.messages))
        proc.send_signal(signal.SIGINT)
        await proc.communicate()
    assert "t_s" in json.loads(message.payload)


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


async def test_a_refused_login_over_tls_is_one_line_everywhere(clinic_broker: BrokerHandle
                                                                ) -> None:
    """Wrong password over TLS: the promised line and nothing else (no "Exception in
    callback" / "Event loop is closed" from a link cancelled mid-connect), from every
    command, several times over (that noise came from a race)."""
    wrong = "not-" + clinic_password("room-1")
    env = cli_env(COACH_MQTT_PASSWORD=wrong)
    base = f"mqtts://{{}}@127.0.0.1:{clinic_broker.tls_port}"
    ca = ("--mqtt-ca", str(clinic_broker.ca))
    demo = ("demo", "--headless", "--speed", "5", "--duration", "30",
            "--mqtt", base.format("room-1") + "/room-1", *ca)
    runs = await asyncio.gather(
        *(coach(*demo, env=env) for _ in range(3)),
        coach("rooms", "--mqtt", base.format("ana"), *ca, env=env),
        coach("dashboard", "--mqtt", base.format("ana") + "/room-1", *ca, env=env))
    for run in runs:
        assert run.returncode in (2, 3), run.stderr
        line = one_clean_line(run, wrong)
        assert "wrong user name or password" in line, line


async def test_a_login_cancelled_as_its_refusal_arrives_raises_nothing_in_the_loop() -> None:
    """The race behind the noise above, made certain: a broker (a few lines of asyncio
    here, so the timing is ours) sends "not authorised" and, in the same step, the
    client's connect is cancelled. The refusal is then read while aiomqtt's cancelled
    CONNACK future is still in place; paho's hang-up must not raise inside the loop."""
    from coach.mqtt.remote import check_login
    from coach.mqtt.url import BrokerURL

    loop = asyncio.get_running_loop()
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    login: asyncio.Task[None] | None = None

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # the CONNECT
        await asyncio.sleep(0.2)  # the client is waiting for its CONNACK now
        writer.write(bytes([0x20, 0x02, 0x00, 0x05]))  # CONNACK, 3.1.1: not authorised
        assert login is not None
        login.cancel()  # readable for the client's next poll, and its connect cancelled
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        login = asyncio.create_task(check_login(BrokerURL("mqtt", "127.0.0.1", port,
                                                          username="ana", password="x")))
        with pytest.raises(asyncio.CancelledError):
            await login
        await asyncio.sleep(0.3)  # paho's hang-up and anything left on the loop run here
    finally:
        server.close()
        loop.set_exception_handler(None)
    assert errors == [], [c.get("message") for c in errors]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # paho 2.2 leaks
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the socket of a failed TLS handshake
async def test_a_tls_hostname_mismatch_says_so(certs: Certs, tmp_path: Path) -> None:
    """A certificate signed by the given CA but for another host: not "give the CA"."""
    from coach.broker import BrokerOptions, EmbeddedBroker
    from coach.mqtt import BrokerAuthError
    from coach.mqtt.remote import check_login
    from coach.mqtt.url import BrokerURL

    cert, key = certificate_for("elsewhere.example", certs, tmp_path)
    async with EmbeddedBroker(BrokerOptions(tls_port=0, certfile=str(cert),
                                            keyfile=str(key))) as broker:
        assert broker.tls_port is not None
        url = BrokerURL("mqtts", "127.0.0.1", broker.tls_port, ca_file=str(certs.ca))
        with pytest.raises(BrokerAuthError) as err:
            await check_login(url)
    assert "hostname mismatch" in str(err.value) and "'127.0.0.1'" in str(err.value)
    assert "--mqtt-ca" not in str(err.value)
    gc.collect()  # paho 2.2 leaks the socket of a failed handshake: collect it here


def certificate_for(name: str, certs: Certs, d: Path) -> tuple[Path, Path]:
    """A server certificate for ``name`` only, signed by the test CA."""
    ca_dir = certs.ca.parent
    run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True,  # noqa: E731
                                    capture_output=True)
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", "other.key", "-out", "other.csr")
    (d / "other.cnf").write_text(f"subjectAltName=DNS:{name}\n")
    run("x509", "-req", "-in", "other.csr", "-CA", str(ca_dir / "ca.pem"), "-CAkey",
        str(ca_dir / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", "other.cnf",
        "-out", "other.pem")
    return d / "other.pem", d / "other.key"


async def test_a_broker_that_cannot_start_says_why_in_one_line(certs: Certs) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy, mismatched = await asyncio.gather(
            coach("broker", "--port", str(port)),
            coach("broker", "--port", "0", "--tls-port", "0", "--cert", str(certs.ca),
                  "--key", str(certs.key)))  # the CA's certificate with the server's key
    assert busy.returncode == 1 and "address already in use" in one_clean_line(busy)
    assert mismatched.returncode == 2
    assert "cannot use the TLS certificate and key" in one_clean_line(mismatched)
