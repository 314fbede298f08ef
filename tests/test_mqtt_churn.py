"""The embedded broker holds under churn: 10 clients subscribing and unsubscribing while
10 others connect, subscribe and wait for a retained message (bench/mqtt_churn.py; its
60 s run is in docs/benchmarks.md). amqtt 0.12.1 as released dropped most connections
here (``dictionary changed size during iteration``); the embedded broker drops none."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from coach.broker import EmbeddedBroker

CHURN_S = float(os.environ.get("COACH_CHURN_S", "4"))


def _bench() -> object:
    path = Path(__file__).resolve().parents[1] / "bench" / "mqtt_churn.py"
    spec = importlib.util.spec_from_file_location("mqtt_churn", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_no_connection_is_dropped_under_subscription_churn(caplog) -> None:
    churn = _bench().churn  # type: ignore[attr-defined]
    caplog.set_level(logging.WARNING)
    async with EmbeddedBroker() as broker:
        assert broker.port is not None
        counts = await churn(broker.port, CHURN_S)
    assert counts["connects"] >= 20 and counts["subscription_changes"] >= 200, counts
    assert counts["dropped"] == 0 and counts["subscriber_errors"] == 0, counts
    assert not [r for r in caplog.records if "dictionary changed size" in r.getMessage()
                or (r.exc_info and "dictionary changed size" in str(r.exc_info[1]))]
