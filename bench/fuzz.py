"""The long fuzz run: a million generated inputs across every parser and file reader.

Runs the targets of ``tests/test_fuzz.py`` (same strategies, same ``check_*``
contracts) outside pytest, in batches of fresh random seeds. Each target's share of
``--total`` follows its weight in ``TARGETS``; every round runs ``1/--rounds`` of each
share, so when ``--budget-s`` wall seconds stop the run early, every target has had
its proportion.
Unlike a test it does not stop at the first failure: every exception that escapes a
check is recorded (deduplicated by type and the line it came from) and the run goes on.

Hypothesis is the slow part of a run (generation costs more than the cheap parsers),
so for the byte parsers each generated input is followed by ``--mutants`` inputs made
from it by a few random byte edits (overwrite, bit flip, insert, delete, truncate), in
plain Python. The report counts both kinds separately.

Prints one JSON object: inputs per target, inputs per second, and the crashes found.
Progress goes to stderr. Exit status 1 if anything escaped.

Run: ``.venv/bin/python bench/fuzz.py [--total 1000000] [--budget-s 2400]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, seed, settings

ROOT = Path(__file__).resolve().parents[1]
# targets whose input is bytes (or a tuple led by bytes) and whose check is cheap
BYTE_TARGETS = frozenset(("hrs", "pmd_frames", "pmd_control_point", "control_messages"))


def load_targets() -> ModuleType:
    """``tests/test_fuzz.py`` as a module (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("coach_fuzz_targets",
                                                  ROOT / "tests" / "test_fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so inspect (and hypothesis) can find its source
    spec.loader.exec_module(module)
    return module


@dataclass
class Tally:
    """Inputs run and time spent on one target, and what escaped."""

    quota: int
    inputs: int = 0
    mutants: int = 0  # of the inputs, those made by byte edits rather than hypothesis
    seconds: float = 0.0
    crashes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, exc: BaseException, value: Any) -> None:
        at = _where(exc)
        key = f"{type(exc).__name__} at {at}"
        if key not in self.crashes:
            self.crashes[key] = {"error": type(exc).__name__, "message": str(exc)[:300],
                                 "where": at, "example": repr(value)[:400], "count": 0}
        self.crashes[key]["count"] += 1


def _where(exc: BaseException) -> str:
    """The innermost line of our own code the exception passed through (else any)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames
            if f.filename.startswith(str(ROOT)) and "/.venv/" not in f.filename
            and not f.filename.endswith("bench/fuzz.py")]
    where = ours[-1] if ours else (frames[-1] if frames else None)
    if where is None:
        return "?"
    name = where.filename
    if name.startswith(str(ROOT)):
        name = str(Path(name).relative_to(ROOT))
    return f"{name}:{where.lineno}"


def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` after one to four random byte edits."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op, pos = rng.randrange(5), rng.randint(0, len(buf))
        if op == 0 and pos < len(buf):
            buf[pos] = rng.randrange(256)
        elif op == 1 and pos < len(buf):
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 2:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 4))
        elif op == 3:
            del buf[pos : pos + rng.randint(1, 4)]
        else:
            del buf[pos:]
    return bytes(buf)


def mutant_of(value: Any, rng: random.Random) -> Any:
    """``value`` with its bytes (the value itself, or a tuple's first bytes) mutated."""
    if isinstance(value, bytes):
        return mutate(value, rng)
    items = list(value)
    k = next(i for i, v in enumerate(items) if isinstance(v, bytes))
    items[k] = mutate(items[k], rng)
    return tuple(items)


def run_batch(strategy: Any, check: Callable[[Any], None], n: int, batch_seed: int,
              tally: Tally, mutants: int) -> None:
    """``n`` fresh inputs from one seed, each followed by ``mutants`` byte-edited ones;
    escapes are recorded, never raised."""
    rng = random.Random(batch_seed)

    def one(value: Any) -> None:
        tally.inputs += 1
        try:
            check(value)
        except Exception as exc:  # the point: record whatever escapes and go on
            tally.record(exc, value)

    @settings(max_examples=n, database=None, deadline=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @seed(batch_seed)
    @given(strategy)
    def batch(value: Any) -> None:
        one(value)
        for _ in range(mutants):
            one(mutant_of(value, rng))
            tally.mutants += 1

    batch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1_000_000, help="inputs, all targets")
    parser.add_argument("--budget-s", type=float, default=2400.0, help="stop after this")
    parser.add_argument("--rounds", type=int, default=100,
                        help="each round runs 1/rounds of every target's share")
    parser.add_argument("--seed", type=int, default=None, help="seed of the batch seeds")
    parser.add_argument("--targets", nargs="*", help="a subset of target names")
    parser.add_argument("--mutants", type=int, default=9,
                        help="byte-edited inputs per generated one (byte parsers only)")
    args = parser.parse_args(argv)

    module = load_targets()
    targets = {k: v for k, v in module.TARGETS.items() if not args.targets or k in args.targets}
    weights = sum(w for _, _, w in targets.values())
    tallies = {k: Tally(quota=max(1, round(args.total * w / weights)))
               for k, (_, _, w) in targets.items()}
    master = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(master)
    start = time.monotonic()
    last_report = start
    stopped_by_budget = False
    while any(t.inputs < t.quota for t in tallies.values()):
        for name, (strategy, check, _) in targets.items():
            tally = tallies[name]
            if tally.inputs >= tally.quota:
                continue
            k = args.mutants if name in BYTE_TARGETS else 0
            step = max(1 + k, tally.quota // args.rounds)  # all targets end together
            n = max(1, min(step, tally.quota - tally.inputs) // (1 + k))
            before, t0 = tally.inputs, time.monotonic()
            run_batch(strategy, check, n, rng.randrange(2**63), tally, k)
            tally.seconds += time.monotonic() - t0
            if tally.inputs == before:  # the strategy is exhausted: nothing new to try
                tally.quota = tally.inputs
        now = time.monotonic()
        if now - last_report > 30:
            last_report = now
            done = {k: t.inputs for k, t in tallies.items()}
            print(f"fuzz {now - start:.0f} s: {done}", file=sys.stderr, flush=True)
        if now - start > args.budget_s:
            stopped_by_budget = True
            break
    elapsed = time.monotonic() - start
    crashes = [{"target": k, **c} for k, t in tallies.items() for c in t.crashes.values()]
    report = {
        "command": " ".join([".venv/bin/python", "bench/fuzz.py", *(argv or sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "hypothesis": hypothesis.__version__},
        "master_seed": master,
        "elapsed_s": round(elapsed, 1),
        "stopped_by_budget": stopped_by_budget,
        "total_inputs": sum(t.inputs for t in tallies.values()),
        "targets": {k: {"inputs": t.inputs, "generated": t.inputs - t.mutants,
                        "mutants": t.mutants, "quota": t.quota,
                        "seconds": round(t.seconds, 1),
                        "inputs_per_s": round(t.inputs / t.seconds, 1) if t.seconds else None,
                        "crashes": len(t.crashes)}
                    for k, t in tallies.items()},
        "crashes": crashes,
    }
    print(json.dumps(report, indent=2))
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
