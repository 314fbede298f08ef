"""Time and peak memory of reading the files ``coach analyze`` takes (coach/signalfile.py).

Writes, in a temporary folder: an ACC CSV of ``--rows`` rows at 200 Hz with jittered and
repeated stamps (as phone loggers write them), a small one for the baseline, and a sparse
2 GB file without a line break. Each is read in a fresh interpreter; the peak resident
memory (``ru_maxrss``) and wall time of that process are reported, the reading's share as
the difference to the small file. Prints one JSON object.

Run: ``.venv/bin/python bench/analyze_files.py [--rows 1000000]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

READ = ("import sys; from pathlib import Path; from coach.signalfile import read_acc; "
        "s = read_acc(Path(sys.argv[1])); print(s.values.shape[0])")


def acc_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    t = np.round(np.arange(rows) / 200.0 + rng.uniform(0, 0.003, rows), 3)
    t = np.maximum.accumulate(t)  # rounding to ms makes ~3 % repeats, as real loggers do
    path.write_text("time_s,x_mg,y_mg,z_mg\n" + "\n".join(map("{:.3f},-975,20,205".format, t)))


# A small launcher forks the measured process: a child's ru_maxrss starts from its
# parent's size at fork, and this script holds the generated files' numbers.
LAUNCH = ("import os, sys\n"
          "pid = os.fork()\n"
          "if pid == 0:\n"
          "    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
          "_, status, usage = os.wait4(pid, 0)\n"
          "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)")


def measure(args: list[str]) -> dict[str, object]:
    """Peak RSS (MB) and wall time (s) of one fresh interpreter running ``args``."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCH, *args], capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - start
    *said, last = done.stderr.strip().splitlines()
    peak_kb, rc = (int(x) for x in last.split())
    return {"rc": rc, "peak_mb": round(peak_kb / 1024, 1), "wall_s": round(wall, 2),
            "stderr": " ".join(said)[-120:]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, big, line = Path(tmp) / "small.csv", Path(tmp) / "big.csv", Path(tmp) / "line"
        acc_csv(small, 3000)
        acc_csv(big, a.rows)
        with line.open("wb") as f:
            f.write(b"800")
            f.truncate(2 << 30)
        base = measure(["-c", READ, str(small)])
        one_line = measure(["-m", "coach.cli", "analyze", "--rr", str(line)])
        rows = measure(["-c", READ, str(big)])
        out = {
            "baseline_3000_rows": base,
            "analyze_rr_2GB_one_line": one_line,
            f"read_acc_{a.rows}_rows": rows | {"file_mb": round(big.stat().st_size / 2**20, 1)},
            "bytes_per_row_at_peak": round((float(rows["peak_mb"]) - float(base["peak_mb"]))
                                           * 2**20 / a.rows),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
