"""The command line as a user meets it: help, the headless demo, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _coach(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coach.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def test_help_lists_the_demo() -> None:
    out = _coach("--help")
    assert out.returncode == 0
    assert "demo" in out.stdout


def test_headless_demo_prints_a_state_a_second_and_a_summary() -> None:
    out = _coach("demo", "--headless", "--duration", "20", "--speed", "max", "--seed", "3",
                 "--scenario", "solo", "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 21
    assert [s["t_s"] for s in lines[:-1]] == list(range(1, 21))
    assert lines[-1]["summary"] is True and lines[-1]["scenario"] == "solo"


def test_headless_demo_is_deterministic_for_a_seed() -> None:
    args = ("demo", "--headless", "--duration", "60", "--speed", "max", "--seed", "5", "--json")
    assert _coach(*args).stdout == _coach(*args).stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (("demo", "--headless", "--speed", "fast"), "speed"),
        (("demo", "--headless", "--duration", "-5"), "duration"),
        (("demo", "--scenario", "nope"), "unknown scenario 'nope'"),
        (("demo", "--scenario", "calm-anchr"), "did you mean 'calm-anchor'?"),
        (("demo", "--headless", "--duration", "nan"), "finite, positive"),
        (("demo", "--headless", "--duration", "inf"), "finite, positive"),
        (("record", "--duration", "inf"), "finite, positive"),
        (("record", "--duration", "0"), "finite, positive"),
        (("run", "--a", "X", "--duration=-inf"), "finite, positive"),
        (("demo", "--json"), "--json needs --headless"),
        (("raplay", "x.coach"), "did you mean 'replay'?"),
    ],
)
def test_bad_arguments_give_one_clear_line_and_no_traceback(args: tuple, needle: str,
                                                            tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "coach.cli", *args], capture_output=True,
                         text=True, timeout=120, check=False, cwd=tmp_path)
    assert out.returncode == 2
    assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written (record used to leave a file)


def test_version_and_scenario_descriptions() -> None:
    from sims.scenarios import SCENARIOS

    out = _coach("--version")
    assert out.returncode == 0 and out.stdout.startswith("coach ")
    for command in ("demo", "record"):
        text = _coach(command, "--help").stdout
        for name, scenario in SCENARIOS.items():
            line = next(x for x in text.splitlines() if x.strip().startswith(name + " "))
            assert scenario.description.splitlines()[0] in line


def test_headless_demo_says_how_far_it_is_a_line_a_simulated_minute() -> None:
    out = _coach("demo", "--headless", "--duration", "180", "--speed", "max", "--json")
    assert out.returncode == 0, out.stderr
    assert [x for x in out.stderr.splitlines() if "min" in x] == [
        f"coach demo: {k} of 3 min" for k in (1, 2, 3)]
    assert all(json.loads(x) for x in out.stdout.splitlines())  # stdout stays JSON
