"""MQTT broker fixtures (a pytest plugin): ``pytest_plugins = ["conftest_mqtt"]``.

``mosquitto`` runs the real /usr/sbin/mosquitto, ``amqtt_broker`` the embedded broker;
``broker`` runs a test once with each. Both require a password and offer TLS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from mqtt_fixtures import (
    PASSWORD,
    USER,
    BrokerHandle,
    Certs,
    Mosquitto,
    make_certs,
    make_clinic_users,
)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def mosquitto(tmp_path: Path, certs: Certs) -> Iterator[Mosquitto]:
    m = Mosquitto(tmp_path, certs)
    m.start()
    try:
        yield m
    finally:
        m.kill()


@pytest_asyncio.fixture
async def amqtt_broker(tmp_path: Path, certs: Certs) -> AsyncIterator[BrokerHandle]:
    from coach.broker import BrokerOptions, EmbeddedBroker, hash_password

    passwd = tmp_path / "amqtt.passwd"
    passwd.write_text(f"{USER}:{hash_password(PASSWORD)}\n")
    broker = EmbeddedBroker(BrokerOptions(password_file=str(passwd), tls_port=0,
                                          certfile=str(certs.cert), keyfile=str(certs.key)))
    await broker.start()
    assert broker.port and broker.tls_port
    try:
        yield BrokerHandle("amqtt", broker.port, broker.tls_port, certs.ca)
    finally:
        await broker.stop()


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker(request: pytest.FixtureRequest) -> BrokerHandle:
    """Each test runs once against Mosquitto and once against the embedded amqtt."""
    if request.param == "mosquitto":
        return request.getfixturevalue("mosquitto").handle
    return request.getfixturevalue("amqtt_broker")




# ------------------------------------------------------------------ the clinic (users + ACLs)


@pytest.fixture
def clinic_users(tmp_path: Path) -> Path:
    return make_clinic_users(tmp_path)


@pytest.fixture
def clinic_mosquitto(tmp_path: Path, certs: Certs, clinic_users: Path) -> Iterator[Mosquitto]:
    m = Mosquitto(tmp_path, certs, users=clinic_users)
    m.start()
    try:
        yield m
    finally:
        m.kill()


@pytest_asyncio.fixture
async def clinic_amqtt(certs: Certs, clinic_users: Path) -> AsyncIterator[BrokerHandle]:
    from coach.broker import BrokerOptions, EmbeddedBroker

    broker = EmbeddedBroker(BrokerOptions(users_file=str(clinic_users), tls_port=0,
                                          certfile=str(certs.cert), keyfile=str(certs.key)))
    await broker.start()
    assert broker.port and broker.tls_port
    try:
        yield BrokerHandle("amqtt", broker.port, broker.tls_port, certs.ca)
    finally:
        await broker.stop()


@pytest.fixture(params=["mosquitto", "amqtt"])
def clinic_broker(request: pytest.FixtureRequest) -> BrokerHandle:
    """A broker whose logins and ACLs come from the CLINIC user list, once per broker."""
    if request.param == "mosquitto":
        return request.getfixturevalue("clinic_mosquitto").handle
    return request.getfixturevalue("clinic_amqtt")
