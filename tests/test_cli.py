"""The command line as a user meets it: help, the headless demo, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

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
        (("demo", "--scenario", "nope"), "invalid choice"),
    ],
)
def test_bad_arguments_give_one_clear_line_and_no_traceback(args: tuple, needle: str) -> None:
    out = _coach(*args)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
