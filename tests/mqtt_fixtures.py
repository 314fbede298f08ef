"""Brokers for MQTT tests: a real Mosquitto and the embedded amqtt, both with a password
and a TLS listener whose certificate each test session generates with ``openssl``.

Helpers only; the fixtures live in ``conftest_mqtt.py`` (register it with
``pytest_plugins = ["conftest_mqtt"]``). Missing mosquitto or openssl is a failure, not a
skip: CI must install them (``apt-get install mosquitto``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coach.bus import Bus
from coach.clock import RealClock
from coach.mqtt.url import BrokerURL
from coach.types import Command, Marker, PacerState, PartnerState, SessionState

MOSQUITTO = os.environ.get("COACH_MOSQUITTO", "/usr/sbin/mosquitto")
USER, PASSWORD = "coach", "correct-horse-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout_s: float = 5.0) -> None:
    """Poll until something accepts on 127.0.0.1:port (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on port {port} after {timeout_s} s")
        time.sleep(0.02)


def _die_with_parent() -> None:
    """In the child: SIGKILL me if pytest dies (pytest-timeout's os._exit skips teardown)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# ------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(d: Path) -> Certs:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl not found: needed to make test TLS certificates")
    run = lambda *a: subprocess.run([openssl, *a], cwd=d, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=coach-test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    return Certs(d / "ca.pem", d / "server.pem", d / "server.key")


# ------------------------------------------------------------------ brokers


@dataclass
class BrokerHandle:
    """A broker under test: how to reach it plain and with TLS."""

    kind: str
    port: int
    tls_port: int
    ca: Path

    def url(self, *, password: str | None = PASSWORD, tls: bool = False,
            user: str | None = USER) -> BrokerURL:
        return BrokerURL("mqtts" if tls else "mqtt", "127.0.0.1",
                         self.tls_port if tls else self.port, user, password,
                         ca_file=str(self.ca) if tls else None)


# The clinic of the ACL tests: two rooms, a therapist who may steer both, one who may
# only watch room-1. Each login's password is its name reversed plus "-pw".
CLINIC = (("room-1", "room", (), False), ("room-2", "room", (), False),
          ("ana", "therapist", ("room-1", "room-2"), True),
          ("tom", "therapist", ("room-1",), False))


def clinic_password(name: str) -> str:
    return name[::-1] + "-pw"


def make_clinic_users(d: Path) -> Path:
    """The CLINIC user list, written as ``coach users add`` does."""
    from coach.mqtt.users import User, UserList, hash_password

    users = UserList()
    for name, role, rooms, control in CLINIC:
        users.add(User(name, role, rooms or (name,), control,  # type: ignore[arg-type]
                       hash_password(clinic_password(name), iterations=1000)))
    path = d / "clinic-users.json"
    users.save(path)
    return path


class Mosquitto:
    """/usr/sbin/mosquitto on free loopback ports; killed and restartable by PID.

    With ``users`` (a coach user list) its logins, ACLs and packet cap come from the
    files ``coach users mosquitto`` writes; else one login (USER) may do anything.
    """

    def __init__(self, d: Path, certs: Certs, users: Path | None = None) -> None:
        if not Path(MOSQUITTO).is_file():
            pytest.fail(f"mosquitto not found at {MOSQUITTO}: apt-get install mosquitto")
        self.dir, self.port, self.tls_port = d, free_port(), free_port()
        if users is not None:
            from coach.mqtt.users import UserList, write_mosquitto_files

            conf = write_mosquitto_files(UserList.load(users), d / "coach")[2].read_text()
        else:
            passwd = d / "passwd"
            subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), USER, PASSWORD],
                           check=True, capture_output=True)
            conf = (f"per_listener_settings false\nallow_anonymous false\n"
                    f"password_file {passwd}\n")
        # as root, mosquitto would switch to user "mosquitto", who cannot read pytest's
        # private tmp dirs; stay the invoking user instead
        user = "user root\n" if os.geteuid() == 0 else ""
        (d / "mosquitto.conf").write_text(
            f"{user}{conf}persistence false\nlog_dest stderr\n"
            f"listener {self.port} 127.0.0.1\n"
            f"listener {self.tls_port} 127.0.0.1\ncafile {certs.ca}\n"
            f"certfile {certs.cert}\nkeyfile {certs.key}\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.handle = BrokerHandle("mosquitto", self.port, self.tls_port, certs.ca)

    def start(self) -> None:
        with (self.dir / "mosquitto.log").open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")],
                                         stdout=log, stderr=log, preexec_fn=_die_with_parent)
        try:
            wait_listening(self.port)
            wait_listening(self.tls_port)
        except TimeoutError:
            self.kill()
            log_text = (self.dir / "mosquitto.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"mosquitto did not start:\n{log_text}")

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a goodbye, as a crashed host would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None


# ------------------------------------------------------------------ a stand-in session


def sample_state(t_s: float, k: int = 0, *, labels: tuple[str, ...] = ("A", "B"),
                 status: str = "ok", markers: tuple[Marker, ...] = (),
                 status_reason: str = "") -> SessionState:
    partners = {
        lab: PartnerState(label=lab, status=status,  # type: ignore[arg-type]
                          rate_bpm=7.0 + i, phase=(0.3 * k + i) % (2 * math.pi), breath=0.1,
                          hr_bpm=70.0 + i, rmssd_ms=40.0, calm=0.5, source="acc",
                          quality=0.8, battery_pct=90 - i, status_reason=status_reason)
        for i, lab in enumerate(labels)
    }
    pacer = PacerState(t0_s=t_s - 0.05, phase0=(0.2 * k) % (2 * math.pi), rate_bpm=6.5)
    return SessionState(t_s, partners, "A", pacer, markers)


class FakeSession:
    """The surface the bridge uses of coach.session.Session, with a 10 Hz state pump."""

    def __init__(self, labels: tuple[str, ...] = ("A", "B")) -> None:
        self.clock = RealClock()
        self.states: Bus[SessionState] = Bus()
        self.labels = labels
        self.t_origin_s = 0.0
        self.commands: list[Command] = []
        self.status = "ok"
        self.status_reason = ""
        self._sinks: list[Callable[[Any], None]] = []

    def add_sink(self, fn: Callable[[Any], None]) -> None:
        self._sinks.append(fn)

    def command(self, cmd: Command) -> None:
        self.commands.append(cmd)
        if cmd.kind == "marker":
            marker = Marker(self.clock.now(), str(cmd.value), cmd.note)
            for fn in self._sinks:
                fn(marker)

    async def pump(self, rate_hz: float = 10.0) -> None:
        self.t_origin_s = self.clock.now()
        k = 0
        while True:
            k += 1
            await self.clock.sleep_until(self.t_origin_s + k / rate_hz)
            self.states.publish(sample_state(self.clock.now(), k, labels=self.labels,
                                             status=self.status,
                                             status_reason=self.status_reason))


async def poll_until(pred: Callable[[], bool], timeout_s: float, step_s: float = 0.02) -> None:
    """Await ``pred()`` becoming true, bounded by ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not pred():
            await asyncio.sleep(step_s)
