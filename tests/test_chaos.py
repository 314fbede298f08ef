"""The chaos soak in CI: 30 virtual minutes of everything going wrong.

Both straps drop out, go silent and lose contact at random; 1 % of notifications are
malformed and 0.5 % lost; the session is recorded and published through an embedded
MQTT broker that goes away and comes back. The session must go on, no exception may
escape to it, and every frame that arrived undamaged must reach the recorder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from coach.recording import RecordingReader


def test_chaos_half_hour_loses_no_intact_frame_and_raises_nothing(tmp_path: Path) -> None:
    recording = tmp_path / "chaos.coach"
    out = subprocess.run(
        [sys.executable, "-m", "coach.cli", "demo", "--headless", "--scenario", "chaos",
         "--duration", "1800", "--speed", "max", "--seed", "4", "--json",
         "--record", str(recording), "--mqtt", "embedded"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    summary = json.loads(lines[-1])
    assert summary["summary"] is True and summary["errors"] == 0
    assert len(lines) == 1801
    assert summary["frames_recorded"] == summary["frames_intact"]
    with RecordingReader(recording) as reader:  # and the file holds every one of them
        for label in ("A", "B"):
            in_file = sum(1 for e in reader.entries(("hr", "ecg", "acc"), label))
            assert in_file == summary["frames_intact"][label]
    assert summary["frames_received"] == summary["frames_intact"]
    for label in ("A", "B"):
        injected, seen = summary["faults_injected"][label], summary["faults_seen"][label]
        assert injected["malformed"] > 0 and seen["malformed"] == injected["malformed"]
        assert sum(injected[k] for k in ("disconnects", "silences", "contact_losses")) > 0
        assert seen["link_losses"] + seen["contact_losses"] > 0
    # the embedded broker went away and came back; the bridge reconnected by itself
    assert summary["broker_outages"] >= 1
    assert summary["mqtt"]["connects"] > summary["broker_outages"]
    assert summary["mqtt"]["states_published"] > 1000
    # the strap warnings stay a handful of lines, not one per bad frame
    assert out.stderr.count("malformed") < 30
    # and the session kept running: the last state still has an orb and both partners
    last = json.loads(lines[-2])
    assert last["pacer"] is not None and set(last["partners"]) == {"A", "B"}
