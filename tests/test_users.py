"""``coach users``: one private user list, from which Mosquitto's files come; logins made
by the command work on a real Mosquitto, and Mosquitto's own hashes verify here."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from aiomqtt.exceptions import MqttConnectError
from mqtt_fixtures import MOSQUITTO, Certs, free_port, wait_listening

from coach.mqtt.link import make_client
from coach.mqtt.url import BrokerURL
from coach.mqtt.users import User, UserList, UserListError, acl_rules, verify_password

pytest_plugins = ["conftest_mqtt"]

ROOT = Path(__file__).resolve().parents[1]


def users(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coach.cli", "users", *args], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=60)


def url(port: int, user: str, password: str, *, tls: bool, ca: str) -> BrokerURL:
    return BrokerURL("mqtts" if tls else "mqtt", "127.0.0.1", port, user, password, ca_file=ca)


def test_mosquitto_passwd_hashes_verify_here(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(f), "ana", "s3cret"], check=True)
    line = f.read_text().strip()
    name, h = line.split(":", 1)
    assert name == "ana" and h.startswith("$7$")
    assert verify_password("s3cret", h)
    assert not verify_password("s3cret ", h) and not verify_password("", h)


def test_bad_users_are_refused() -> None:
    with pytest.raises(UserListError, match="needs --rooms"):
        User("ana", "therapist", ())
    with pytest.raises(UserListError, match="never steers"):
        User("room-1", "room", ("room-1",), control=True)
    with pytest.raises(UserListError, match="room name"):
        User("room-1", "room", ("room-2",))
    for bad in ("a b", "ana:x", "", "x" * 65, "ana\n"):
        with pytest.raises(UserListError):
            User(bad, "therapist", ("room-1",))


def test_rules_follow_the_roles() -> None:
    read, write = acl_rules(User("room-1", "room", ("room-1",)))
    assert read == ("coach/v1/room-1/control",)
    assert "coach/v1/room-1/control" not in write and "coach/v1/room-1/state" in write
    read, write = acl_rules(User("tom", "therapist", ("room-1", "room-2")))
    assert read == ("coach/v1/room-1/#", "coach/v1/room-2/#") and write == ()


async def test_users_made_by_the_command_log_in_to_mosquitto(tmp_path: Path,
                                                             certs: Certs) -> None:
    listing = tmp_path / "clinic.json"
    made = users("add", "room-1", "--role", "room", "--file", str(listing))  # no terminal
    assert made.returncode == 0, made.stderr
    (password,) = re.findall(r"shown once, not stored\): (\S+)$", made.stdout)
    (tmp_path / "ana.pw").write_text("ana-secret-1\n")
    made = users("add", "ana", "--role", "therapist", "--rooms", "room-1,room-2", "--control",
                 "--password-file", str(tmp_path / "ana.pw"), "--file", str(listing))
    assert made.returncode == 0 and made.stdout == "", made.stderr
    again = users("add", "ana", "--role", "therapist", "--rooms", "room-1",
                  "--generate", "--file", str(listing))
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "exists" in again.stderr
    assert stat.S_IMODE(listing.stat().st_mode) == 0o600
    text = listing.read_text()
    assert password not in text and "ana-secret-1" not in text
    assert [u["name"] for u in json.loads(text)["users"]] == ["ana", "room-1"]

    # Mosquitto from the files alone: the snippet names the files and a TLS listener
    port, owner = free_port(), pwd.getpwuid(os.getuid()).pw_name
    written = users("mosquitto", str(tmp_path / "mq"), "--file", str(listing), "--owner", owner,
                    "--tls-port", str(port), "--host", "127.0.0.1", "--cert", str(certs.cert),
                    "--key", str(certs.key))
    assert written.returncode == 0, written.stderr
    for name in ("passwd", "acl", "coach.conf"):
        assert stat.S_IMODE((tmp_path / "mq" / name).stat().st_mode) == 0o600
    run_as = "user root\n" if os.geteuid() == 0 else ""  # as the Mosquitto fixture does
    (tmp_path / "main.conf").write_text(f"{run_as}persistence false\nlog_dest stderr\n"
                                        f"include_dir {tmp_path / 'mq'}\n")
    with (tmp_path / "mosquitto.log").open("wb") as log:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(tmp_path / "main.conf")], stdout=log,
                                stderr=log)
    try:
        wait_listening(port)
        tls = {"tls": True, "ca": str(certs.ca)}
        async with asyncio.timeout(20):
            for user, pw in (("room-1", password), ("ana", "ana-secret-1")):
                async with make_client(url(port, user, pw, **tls)):
                    pass
            with pytest.raises(MqttConnectError):
                async with make_client(url(port, "ana", password, **tls)):
                    pass
    finally:
        proc.kill()
        proc.wait(5)
    assert UserList.load(listing).check("ana", "ana-secret-1") is not None


def test_remove_and_list(tmp_path: Path) -> None:
    listing = tmp_path / "u.json"
    assert users("add", "room-3", "--role", "room", "--file", str(listing)).returncode == 0
    assert users("list", "--file", str(listing)).stdout.startswith("room-3 ")
    assert users("remove", "room-3", "--file", str(listing)).returncode == 0
    gone = users("remove", "room-3", "--file", str(listing))
    assert gone.returncode == 2 and "no user 'room-3'" in gone.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    listed = users("list", "--file", str(broken))
    assert listed.returncode == 2 and "damaged" in listed.stderr
    assert "Traceback" not in listed.stderr
    served = subprocess.run([sys.executable, "-m", "coach.cli", "broker", "--port", "0",
                             "--users", str(broken)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert served.returncode == 2 and served.stderr.count("\n") == 1, served.stderr
    assert "damaged" in served.stderr
