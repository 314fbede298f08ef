"""The clinic's MQTT users and what each may touch, kept in one list.

One JSON file (private: 0600) lists every login: a **room** (the session of one room,
whose login name is its room name) or a **therapist** (who watches some rooms and may
steer them only if given ``control``). From that list come both brokers' settings:

- the embedded broker reads it directly (``coach broker --users FILE``);
- for Mosquitto, :func:`write_mosquitto_files` writes a ``password_file``, an
  ``acl_file`` and a ``mosquitto.conf`` snippet naming them.

Passwords are stored only as Mosquitto's PBKDF2-SHA512 hash (``$7$<iterations>$<salt>
$<hash>``, base64 salt and hash), which Mosquitto 2.0 reads natively and the embedded
broker verifies with :func:`verify_password`; no other copy is kept.

The rules (:func:`acl_rules`): a room publishes its own ``state``, ``presence``,
``markers`` and ``status/<label>`` (last wills included) and reads only its own
``control``; a therapist reads ``coach/v1/<room>/#`` of their rooms and publishes to
their ``control`` topics only with ``control``; anyone else reads and writes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coach.mqtt.url import MqttConfigError, check_room

Role = Literal["room", "therapist"]
ROLES: tuple[Role, ...] = ("room", "therapist")
PREFIX = "coach/v1"
ROOM_PUBLISHES = ("state", "presence", "markers", "status/+")  # everything but control
PBKDF2_ITERATIONS = 100_000  # mosquitto_passwd 2.0 uses 101; more is slower to guess
SALT_BYTES = 12  # as mosquitto_passwd
MAX_PACKET_BYTES = 65_536  # broker cap on one MQTT packet (states are ~1 kB)
USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
FILE_VERSION = 1


class UserListError(MqttConfigError):
    """A user list that cannot be read or a user that cannot be added."""


@dataclass(frozen=True, slots=True)
class User:
    """One login. A room's name is its room; a therapist lists the rooms they watch."""

    name: str
    role: Role
    rooms: tuple[str, ...]
    control: bool = False
    password_hash: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        check_user_name(self.name)
        if self.role not in ROLES:
            raise UserListError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        for room in self.rooms:
            check_room(room)
        if self.role == "room":
            if self.rooms != (self.name,):
                raise UserListError("a room's login is its room name (rooms = (name,))")
            if self.control:
                raise UserListError("--control is for therapists: a room never steers itself")
        elif not self.rooms:
            raise UserListError(f"therapist {self.name!r} needs --rooms ROOM[,ROOM...]")


def check_user_name(name: str) -> str:
    """A login name: 1-64 of ``[A-Za-z0-9._-]`` starting with a letter or digit."""
    if not isinstance(name, str) or not USER_RE.match(name):
        raise UserListError(
            "user name must be 1-64 characters of A-Z a-z 0-9 . _ - (starting with a letter "
            f"or digit), got {name!r}"
        )
    return name


# ------------------------------------------------------------------ passwords


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto's ``$7$`` PBKDF2-SHA512 hash of ``password`` (a fresh random salt)."""
    if not password:
        raise UserListError("the password is empty")
    salt = secrets.token_bytes(SALT_BYTES)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, password_hash: str) -> bool:
    """True if ``password`` matches a ``$7$`` hash (constant-time compare)."""
    parts = password_hash.split("$")
    if len(parts) != 5 or parts[:2] != ["", "7"] or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        want = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    iterations = int(parts[2])
    if not 1 <= iterations <= 10_000_000 or not want:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(want))
    return hmac.compare_digest(got, want)


def new_password() -> str:
    """A random password of 24 URL-safe characters (about 144 bits)."""
    return secrets.token_urlsafe(18)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


# ------------------------------------------------------------------ rules


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching of a topic against a filter with ``+`` and ``#`` (pure)."""
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return i == len(f) - 1
        if i >= len(t) or level not in ("+", t[i]):
            return False
    return len(f) == len(t)


def acl_rules(user: User) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(read, write)`` topic filters of ``user``."""
    if user.role == "room":
        room = user.rooms[0]
        return (f"{PREFIX}/{room}/control",), tuple(f"{PREFIX}/{room}/{t}" for t in ROOM_PUBLISHES)
    read = tuple(f"{PREFIX}/{room}/#" for room in user.rooms)
    write = tuple(f"{PREFIX}/{room}/control" for room in user.rooms) if user.control else ()
    return read, write


def may_publish(user: User | None, topic: str) -> bool:
    return user is not None and any(topic_matches(f, topic) for f in acl_rules(user)[1])


def may_read(user: User | None, topic: str) -> bool:
    return user is not None and any(topic_matches(f, topic) for f in acl_rules(user)[0])


# ------------------------------------------------------------------ the list


@dataclass
class UserList:
    """The clinic's users, read from and written to one private JSON file."""

    users: dict[str, User] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> UserList:
        """Read ``path``; a missing file is an empty list only for :meth:`load_or_new`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserListError(f"cannot read user list {str(path)!r}: {exc.strerror}") from None
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict) or obj.get("v") != FILE_VERSION:
                raise ValueError("not a coach user list (version 1)")
            users = [_user_from_json(u) for u in obj["users"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserListError(f"user list {str(path)!r} is damaged: {exc}") from None
        return cls({u.name: u for u in users})

    @classmethod
    def load_or_new(cls, path: str | os.PathLike[str]) -> UserList:
        return cls.load(path) if Path(path).exists() else cls()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically, readable by the owner only (it holds password hashes)."""
        body = {"v": FILE_VERSION, "users": [_user_to_json(u) for u in self.sorted()]}
        _write_private(Path(path), json.dumps(body, indent=1) + "\n")

    def sorted(self) -> list[User]:
        return [self.users[k] for k in sorted(self.users)]

    def add(self, user: User, *, replace: bool = False) -> None:
        if user.name in self.users and not replace:
            raise UserListError(f"user {user.name!r} exists (remove it first, or --replace)")
        self.users[user.name] = user

    def remove(self, name: str) -> None:
        if self.users.pop(name, None) is None:
            raise UserListError(f"no user {name!r}")

    def check(self, name: str | None, password: str | None) -> User | None:
        """The user if ``name``/``password`` is a valid login, else None."""
        user = self.users.get(name or "")
        if user is None or not password or not verify_password(password, user.password_hash):
            return None
        return user


def _user_to_json(u: User) -> dict[str, Any]:
    return {"name": u.name, "role": u.role, "rooms": list(u.rooms), "control": u.control,
            "hash": u.password_hash}


def _user_from_json(obj: Any) -> User:
    if not isinstance(obj, dict) or not isinstance(obj.get("rooms"), list):
        raise ValueError("a user entry must be an object with a rooms list")
    h = obj.get("hash")
    if not isinstance(h, str) or not h.startswith("$7$"):
        raise ValueError(f"user {obj.get('name')!r} has no $7$ password hash")
    return User(obj["name"], obj["role"], tuple(obj["rooms"]), bool(obj.get("control")), h)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ Mosquitto


def mosquitto_passwd(users: Iterable[User]) -> str:
    """A Mosquitto ``password_file``: ``name:$7$...`` lines."""
    return "".join(f"{u.name}:{u.password_hash}\n" for u in users)


def mosquitto_acl(users: Iterable[User]) -> str:
    """A Mosquitto ``acl_file``: per user, ``topic read|write FILTER`` lines.

    Nothing is granted outside a ``user`` block, so an unlisted login reads nothing.
    """
    out = ["# coach: generated by `coach users mosquitto`; edit the user list, not this\n"]
    for u in users:
        read, write = acl_rules(u)
        out.append(f"\nuser {u.name}\n")
        out += [f"topic read {t}\n" for t in read]
        out += [f"topic write {t}\n" for t in write]
    return "".join(out)


@dataclass(frozen=True, slots=True)
class TlsListener:
    """A Mosquitto TLS listener for the snippet (what ``coach broker --tls-port`` serves)."""

    port: int
    certfile: str
    keyfile: str
    host: str = "0.0.0.0"


def mosquitto_conf(passwd: Path, acl: Path, tls: TlsListener | None = None) -> str:
    """Settings for mosquitto.conf: logins, ACLs, a packet size cap, and a TLS listener."""
    text = (
        "# coach: generated by `coach users mosquitto`\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"password_file {passwd}\n"
        f"acl_file {acl}\n"
        "# a larger packet is refused before it is read into memory (states are ~1 kB)\n"
        f"max_packet_size {MAX_PACKET_BYTES}\n"
        "set_tcp_nodelay true\n"
    )
    if tls is not None:
        text += (f"listener {tls.port} {tls.host}\n"
                 f"certfile {Path(tls.certfile).absolute()}\n"
                 f"keyfile {Path(tls.keyfile).absolute()}\n")
    return text


def write_mosquitto_files(users: UserList, out_dir: str | os.PathLike[str], *,
                          tls: TlsListener | None = None, owner: str | None = None
                          ) -> list[Path]:
    """Write ``passwd``, ``acl`` and ``coach.conf`` (all 0600) into ``out_dir``.

    ``owner``: the user Mosquitto runs as (Debian: ``mosquitto``), who must read them.
    """
    uid_gid = None
    if owner is not None:
        import pwd

        try:
            entry = pwd.getpwnam(owner)
        except KeyError:
            raise UserListError(f"no system user {owner!r} to own the files") from None
        uid_gid = (entry.pw_uid, entry.pw_gid)
    d = Path(out_dir).absolute()
    d.mkdir(parents=True, exist_ok=True)
    passwd, acl, conf = d / "passwd", d / "acl", d / "coach.conf"
    _write_private(passwd, mosquitto_passwd(users.sorted()))
    _write_private(acl, mosquitto_acl(users.sorted()))
    _write_private(conf, mosquitto_conf(passwd, acl, tls))
    if uid_gid is not None:
        for path in (passwd, acl, conf):
            os.chown(path, *uid_gid)
    return [passwd, acl, conf]
