"""Whole-pipeline demo sessions for the tests, run on both cores.

pytest runs the tests on one core and CI has two. A module that checks several simulated
sessions (``coach demo --headless`` in virtual time: seeded, so the same states whichever
process runs them) lists them in a :class:`DemoRuns`; at its first use they all start, in
two spawned worker processes (the longest first), and each result is kept for the module.
Warnings are errors in the workers too, as under pytest.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

WORKERS = 2

Run = tuple[str, int, float, bool]  # scenario, seed, duration (s), print JSON states


def demo(scenario: str, seed: int, duration_s: float, emit_json: bool) -> tuple[str, Any]:
    """``coach demo --headless --speed max`` in this process: what it printed, its summary."""
    from coach.clock import VirtualClock
    from coach.commands.demo import run_headless

    warnings.simplefilter("error")
    out = io.StringIO()
    clock = VirtualClock()
    with contextlib.redirect_stdout(out):
        summary = clock.run(run_headless(clock, scenario, seed, duration_s,
                                         emit_json=emit_json))
    return out.getvalue(), summary


class DemoRuns:
    """The sessions one test module checks, all started together at the first :meth:`get`."""

    def __init__(self, *runs: Run) -> None:
        self.runs = runs
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Run, Future[tuple[str, Any]]] = {}

    def get(self, *run: Any) -> tuple[str, Any]:
        """The printed output and summary of ``run`` (one of the listed ones, or another)."""
        key: Run = (str(run[0]), int(run[1]), float(run[2]), bool(run[3]))
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
            self._pool = ProcessPoolExecutor(WORKERS, mp_context=ctx)
            for r in sorted(self.runs, key=lambda r: -r[2]):  # the longest first
                self._futures[r] = self._pool.submit(demo, *r)
        if key not in self._futures:
            self._futures[key] = self._pool.submit(demo, *key)
        return self._futures[key].result()

    def close(self) -> None:
        """Stop the workers (runs not yet asked for are cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
