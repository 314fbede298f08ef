"""``coach users``: the clinic's MQTT logins and what each may touch, in one list.

``coach users add room-1 --role room`` and ``coach users add ana --role therapist --rooms
room-1,room-2 [--control]`` keep the list (a private file); ``coach broker --users FILE``
serves it; ``coach users mosquitto DIR`` writes Mosquitto's password file, ACL file and a
``mosquitto.conf`` snippet. Passwords never go on the command line: they are prompted
for, read from ``--password-file``, or generated and printed once.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

DEFAULT_FILE = "coach-users.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--file", metavar="FILE", default=DEFAULT_FILE,
                        help=f"the user list (default ./{DEFAULT_FILE}; created 0600)")
    sub = p.add_subparsers(dest="users_command", metavar="ACTION")
    add = sub.add_parser("add", parents=[common], help="add a room or a therapist")
    add.add_argument("name", help="login name; a room's login is its room name")
    add.add_argument("--role", choices=("room", "therapist"), required=True)
    add.add_argument("--rooms", default=None, metavar="R1,R2",
                     help="the rooms a therapist watches (comma-separated)")
    add.add_argument("--control", action="store_true",
                     help="the therapist may also steer those rooms (their control topics)")
    how = add.add_mutually_exclusive_group()
    how.add_argument("--password-file", metavar="FILE", default=None,
                     help="take the password from the first line of FILE")
    how.add_argument("--generate", action="store_true",
                     help="make a random password and print it once (default without a terminal)")
    add.add_argument("--replace", action="store_true", help="replace an existing user")
    rm = sub.add_parser("remove", parents=[common], help="remove a user")
    rm.add_argument("name")
    sub.add_parser("list", parents=[common], help="list users, roles and rooms")
    mq = sub.add_parser("mosquitto", parents=[common],
                        help="write passwd, acl and coach.conf for Mosquitto into DIR")
    mq.add_argument("dir", metavar="DIR", help="e.g. /etc/mosquitto/conf.d (Debian includes it)")
    mq.add_argument("--owner", metavar="USER", default=None,
                    help="make the files USER's (Debian's mosquitto runs as 'mosquitto')")
    mq.add_argument("--tls-port", type=int, default=None, help="add a TLS listener on this port")
    mq.add_argument("--host", default="0.0.0.0", help="its address (default all)")
    mq.add_argument("--cert", metavar="PEM", default=None, help="its certificate chain")
    mq.add_argument("--key", metavar="PEM", default=None, help="its private key")


def main(args: argparse.Namespace) -> int:
    from coach.mqtt.url import MqttConfigError

    action = getattr(args, "users_command", None)
    if action is None:
        print("coach users: give an action: add, remove, list or mosquitto", file=sys.stderr)
        return 2
    try:
        return int(_ACTIONS[action](args))
    except MqttConfigError as exc:
        print(f"coach users: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"coach users: {exc.filename or args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _add(args: argparse.Namespace) -> int:
    from coach.mqtt.url import read_password_file
    from coach.mqtt.users import User, UserList, UserListError, hash_password, new_password

    if args.role == "room":
        if args.rooms not in (None, args.name):
            raise UserListError("a room's login is its room name: leave out --rooms")
        rooms: tuple[str, ...] = (args.name,)
    else:
        rooms = tuple(r.strip() for r in (args.rooms or "").split(",") if r.strip())
    User(args.name, args.role, rooms, args.control)  # check before asking for a password
    users = UserList.load_or_new(args.file)
    if args.name in users.users and not args.replace:
        raise UserListError(f"user {args.name!r} exists (remove it first, or --replace)")
    shown = None
    if args.password_file is not None:
        password = read_password_file(args.password_file)
    elif args.generate or not sys.stdin.isatty():
        password = shown = new_password()
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            raise UserListError("the two passwords differ")
    users.add(User(args.name, args.role, rooms, args.control, hash_password(password)),
              replace=args.replace)
    users.save(args.file)
    print(f"coach users: {_describe(users.users[args.name])} -> {args.file}", file=sys.stderr)
    if shown is not None:
        print(f"password for {args.name} (shown once, not stored): {shown}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from coach.mqtt.users import UserList

    users = UserList.load(args.file)
    users.remove(args.name)
    users.save(args.file)
    print(f"coach users: removed {args.name} from {args.file}", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from coach.mqtt.users import UserList

    users = UserList.load(args.file)
    for u in users.sorted():
        print(_describe(u))
    if not users.users:
        print(f"no users in {args.file}", file=sys.stderr)
    return 0


def _mosquitto(args: argparse.Namespace) -> int:
    from coach.mqtt.users import TlsListener, UserList, UserListError, write_mosquitto_files

    tls = None
    if args.tls_port is not None:
        if not (args.cert and args.key):
            raise UserListError("a TLS listener needs --cert and --key")
        tls = TlsListener(args.tls_port, args.cert, args.key, args.host)
    users = UserList.load(args.file)
    passwd, acl, conf = write_mosquitto_files(users, args.dir, tls=tls, owner=args.owner)
    print(f"coach users: wrote {passwd}, {acl} and {conf} ({len(users.users)} users)",
          file=sys.stderr)
    if conf.parent != Path("/etc/mosquitto/conf.d"):
        print(f"coach users: mosquitto.conf needs: include_dir {conf.parent}", file=sys.stderr)
    return 0


def _describe(u: object) -> str:
    from coach.mqtt.users import User

    assert isinstance(u, User)
    if u.role == "room":
        return f"{u.name:<20} room        publishes {u.name}, reads its control"
    steer = "reads and steers" if u.control else "reads"
    return f"{u.name:<20} therapist   {steer} {','.join(u.rooms)}"


_ACTIONS = {"add": _add, "remove": _remove, "list": _list, "mosquitto": _mosquitto}
