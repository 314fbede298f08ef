"""``coach users``: one private user list, from which Mosquitto's files come; logins made
by the command work on a real Mosquitto, and Mosquitto's own hashes verify here."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from aiomqtt.exceptions import MqttConnectError
from mqtt_fixtures import Certs, Mosquitto

from coach.mqtt.link import make_client
from coach.mqtt.url import BrokerURL
from coach.mqtt.users import User, UserList, UserListError, acl_rules, verify_password

pytest_plugins = ["conftest_mqtt"]

ROOT = Path(__file__).resolve().parents[1]


def users(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coach.cli", "users", *args], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=60)


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

    written = users("mosquitto", str(tmp_path / "mq"), "--file", str(listing))
    assert written.returncode == 0, written.stderr
    for name in ("passwd", "acl", "coach.conf"):
        assert stat.S_IMODE((tmp_path / "mq" / name).stat().st_mode) == 0o600
    assert "max_packet_size" in (tmp_path / "mq" / "coach.conf").read_text()

    m = Mosquitto(tmp_path, certs, users=listing)
    m.start()
    try:
        async with asyncio.timeout(20):
            for user, pw in (("room-1", password), ("ana", "ana-secret-1")):
                async with make_client(BrokerURL("mqtt", "127.0.0.1", m.port, user, pw)):
                    pass
            with pytest.raises(MqttConnectError):
                async with make_client(BrokerURL("mqtt", "127.0.0.1", m.port, "ana", password)):
                    pass
    finally:
        m.kill()
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
