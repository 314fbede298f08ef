"""Synchrony against chance through the whole pipeline: the four control scenarios.

Runs ``coach demo --headless --speed max`` in-process for each scenario and seed and
pools the independent one-minute windows judged beyond chance (coach.synchrony):

- ``uncoupled``: each breathes on their own, at different natural rates;
- ``same-rate``: uncoupled, at the same natural rate;
- ``orb-only``: both follow the orb, not each other;
- ``attuned``: they follow each other, not the orb.

Acceptance (issue 14): the three controls give ``synchrony_beyond_chance_percent`` <= 5
with the upper bound of the pooled 95 % Wilson interval <= 10; ``attuned`` >= 80.

Run: ``.venv/bin/python bench/controls.py [--seeds 1-5] [--duration 1800] [--out FILE]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time

from coach.clock import VirtualClock
from coach.commands.demo import run_headless
from coach.synchrony import share_summary

SCENARIOS = ("uncoupled", "same-rate", "orb-only", "attuned")
LIMITS = {"uncoupled": (None, 5.0, 10.0), "same-rate": (None, 5.0, 10.0),
          "orb-only": (None, 5.0, 10.0), "attuned": (80.0, None, None)}


def run_one(scenario: str, seed: int, duration_s: float) -> dict:
    """The headless summary of one simulated session."""
    clock = VirtualClock()
    with contextlib.redirect_stdout(io.StringIO()):
        return clock.run(run_headless(clock, scenario, seed, duration_s, emit_json=False))


def pooled(scenario: str, seeds: list[int], duration_s: float) -> dict:
    """Windows and windows beyond chance summed over the seeds, with the pooled interval."""
    windows = beyond = 0
    per_seed = []
    for seed in seeds:
        s = run_one(scenario, seed, duration_s)
        windows += s["synchrony_windows"]
        beyond += s["synchrony_windows_beyond_chance"]
        per_seed.append(s["synchrony_beyond_chance_percent"])
    return share_summary(beyond, windows) | {"per_seed_percent": per_seed}


def passes(scenario: str, result: dict) -> bool:
    low, high, upper = LIMITS[scenario]
    pct, ci = result["synchrony_beyond_chance_percent"], result["ci95_percent"]
    if pct is None:
        return False
    return ((low is None or pct >= low) and (high is None or pct <= high)
            and (upper is None or ci[1] <= upper))


def seed_list(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1-5", help="seeds, e.g. 1-5 (default)")
    p.add_argument("--duration", type=float, default=1800.0, help="seconds per session")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--out", default=None, help="also write the markdown table here")
    args = p.parse_args()
    seeds = seed_list(args.seeds)
    rows = ["| scenario | beyond chance | 95 % Wilson interval | windows | per seed (%) | ok |",
            "|---|---|---|---|---|---|"]
    results, ok_all = {}, True
    for scenario in args.scenarios.split(","):
        start = time.perf_counter()
        r = pooled(scenario, seeds, args.duration)
        ok = passes(scenario, r)
        ok_all &= ok
        results[scenario] = r | {"ok": ok, "seconds": round(time.perf_counter() - start, 1)}
        lo, hi = r["ci95_percent"] or (None, None)
        rows.append(f"| {scenario} | {r['synchrony_beyond_chance_percent']} % | {lo}-{hi} % | "
                    f"{r['windows_beyond_chance']}/{r['windows']} | "
                    f"{', '.join(str(x) for x in r['per_seed_percent'])} | "
                    f"{'yes' if ok else 'NO'} |")
        print(json.dumps({scenario: results[scenario]}), file=sys.stderr, flush=True)
    table = "\n".join(rows)
    print(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table + "\n")
    return 0 if ok_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
