"""``coach broker``: an MQTT broker for a small office (embedded amqtt).

Loopback on port 1883 by default. To let dashboards on other machines in, give it the
clinic's user list (``--users``, made with ``coach users``: logins and who may touch which
room) and a TLS listener; an open or plaintext broker beyond loopback is refused unless
``--insecure``. ``coach broker --hash-password USER`` prints a password-file line
(the password is read from COACH_MQTT_PASSWORD or the first line of stdin).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from coach.mqtt.url import PASSWORD_ENV


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=1883, help="plaintext MQTT port (default 1883)")
    p.add_argument("--users", metavar="FILE", default=None,
                   help="the user list of `coach users`: logins and per-room rights")
    p.add_argument("--password-file", metavar="FILE", default=None,
                   help="lines of 'user:<argon2 hash>' (make them with --hash-password); "
                        "every login may then read and write every room: prefer --users")
    p.add_argument("--tls-port", type=int, default=None, help="also listen with TLS here")
    p.add_argument("--cert", metavar="PEM", default=None, help="TLS certificate chain")
    p.add_argument("--key", metavar="PEM", default=None, help="TLS private key")
    p.add_argument("--no-plaintext", action="store_true", help="TLS listener only")
    p.add_argument("--insecure", action="store_true",
                   help="allow an anonymous or plaintext listener beyond loopback")
    p.add_argument("--hash-password", metavar="USER", default=None,
                   help=f"print 'USER:<hash>' for a password file (password from {PASSWORD_ENV} "
                        "or stdin) and exit")


def main(args: argparse.Namespace) -> int:
    from coach.broker import BrokerOptions, EmbeddedBroker, hash_password
    from coach.mqtt.url import MqttConfigError

    if args.hash_password is not None:
        password = os.environ.get(PASSWORD_ENV) or sys.stdin.readline().rstrip("\r\n")
        if not password or ":" in args.hash_password:
            print("coach broker: need a user without ':' and a non-empty password", file=sys.stderr)
            return 2
        print(f"{args.hash_password}:{hash_password(password)}")
        return 0
    opts = BrokerOptions(host=args.host, port=args.port, password_file=args.password_file,
                         users_file=args.users,
                         tls_port=args.tls_port, certfile=args.cert, keyfile=args.key,
                         plaintext=not args.no_plaintext, insecure=args.insecure)
    try:
        broker = EmbeddedBroker(opts)
        asyncio.run(_serve(broker))
    except MqttConfigError as exc:
        print(f"coach broker: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"coach broker: cannot listen on {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(broker: object) -> None:
    from coach.broker import EmbeddedBroker

    assert isinstance(broker, EmbeddedBroker)
    await broker.start()
    ports = ([f"port {broker.port}"] if broker.port else []) + (
        [f"TLS port {broker.tls_port}"] if broker.tls_port else [])
    print(f"coach broker: listening on {broker.opts.host} {', '.join(ports)}", file=sys.stderr,
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await broker.stop()
