"""Paint CPU of one orb frame at 1920x1080, this orb against the orb of an older commit.

The older ``ui/orb.py`` is read with ``git show COMMIT:ui/orb.py``; both paint the same
breath (levels over a full cycle, two partner rings, the word), the old one whole frames,
this one only the area the orb can reach (as ``OrbWindow`` repaints it). Offscreen,
thread CPU time per frame; at 60 fps, ms per frame x 6 = % of a core.

    .venv/bin/python bench/orb_paint.py [--base 1a87f4a] [--frames 240]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QRectF  # noqa: E402
from PySide6.QtGui import QPainter, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

W, H = 1920, 1080


def old_orb(commit: str) -> ModuleType:
    text = subprocess.run(["git", "show", f"{commit}:ui/orb.py"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "orb_old.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("orb_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["orb_old"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def ms_per_frame(mod: ModuleType, frames: int, partial: bool) -> float:
    rect = QRectF(0, 0, W, H)
    img, bg = QPixmap(W, H), QPixmap(W, H)
    p = QPainter(bg)
    mod.paint_background(p, rect)
    p.end()
    extent = 0.0
    t0 = time.thread_time()
    for k in range(frames):
        level = 0.5 - 0.5 * math.cos(2 * math.pi * k / frames)
        frame = mod.OrbFrame(level=level, word="in", word_alpha=1.0,
                             partners={"A": 0.9 * level, "B": 0.2 + 0.7 * level})
        p = QPainter(img)
        if partial and extent:
            reach, c = extent * 1.08 + 4.0, rect.center()
            p.setClipRect(QRectF(c.x() - reach, c.y() - reach, 2 * reach, 2 * reach)
                          .united(QRectF(0, H * 0.85, W, H * 0.15)))
        r = mod.paint_orb(p, rect, frame, bg)
        p.end()
        rings = [mod.radius_for_level(v, W, H) for v in frame.partners.values()]
        extent = max(1.7 * r, *rings) + 2.0
    return 1000.0 * (time.thread_time() - t0) / frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="1a87f4a", help="commit of the orb to compare with")
    ap.add_argument("--frames", type=int, default=240)
    args = ap.parse_args()
    QApplication.instance() or QApplication([])
    from ui import orb as new

    before = ms_per_frame(old_orb(args.base), args.frames, partial=False)
    after = ms_per_frame(new, args.frames, partial=True)
    print(json.dumps({"ms_per_frame": {"before": round(before, 2), "after": round(after, 2)},
                      "percent_of_a_core_at_60fps": {"before": round(6 * before, 1),
                                                     "after": round(6 * after, 1)},
                      "load_avg_1min": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
