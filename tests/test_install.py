"""A plain ``pip install .`` (no extras) in a fresh venv runs ``coach record`` and
``coach report``: everything the report needs is a declared dependency.

pip is the test venv's own (``pip --python``), with its usual cache and indexes, and
skips byte-compiling (``--no-compile``): the install then takes well under a minute.
The source is copied first, so the build leaves nothing in the working tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("coach", "drivers", "sims", "ui", "pyproject.toml", "README.md")


def test_plain_install_in_a_fresh_venv_runs_record_and_report(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in SOURCES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                          "--quiet", "--no-compile", str(src)], capture_output=True,
                         text=True, timeout=600, check=False)
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert "license" not in pip.stderr.lower()  # the SPDX licence: no setuptools warnings
    coach = venv / "bin" / "coach"
    rec, page = tmp_path / "s.coach", tmp_path / "out" / "s.html"
    made = subprocess.run([str(coach), "record", "--out", str(rec), "--duration", "150",
                           "--speed", "max"], capture_output=True, text=True, timeout=300,
                          check=False, cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    report = subprocess.run([str(coach), "report", str(rec), "--out", str(page)],
                            capture_output=True, text=True, timeout=300, check=False,
                            cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert page.read_text().count("<svg") == 4
    version = subprocess.run([str(coach), "--version"], capture_output=True, text=True,
                             timeout=60, check=True, cwd=tmp_path)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version.stdout.strip() == f"coach {declared}"
