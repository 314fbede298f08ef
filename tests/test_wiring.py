"""Views are wired, they do not wire: one module builds sessions, and imports point one way.

``coach.wiring`` builds a session from settings (simulated or real straps, recorder,
MQTT); the commands call it and hand the result to ``ui``. ``ui`` never imports the
commands, and ``coach`` imports ``ui``, ``drivers`` and ``sims`` only inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Modules a file imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_ui_never_imports_the_commands() -> None:
    for path in sorted((ROOT / "ui").glob("*.py")):
        bad = {m for m in imports(path, top_level_only=False) if m.startswith("coach.commands")}
        assert not bad, (path.name, bad)


def test_coach_imports_views_drivers_and_sims_only_inside_functions() -> None:
    for path in sorted((ROOT / "coach").rglob("*.py")):
        top = imports(path, top_level_only=True)
        bad = {m for m in top if m.split(".")[0] in ("ui", "drivers", "sims", "PySide6")}
        assert not bad, (str(path.relative_to(ROOT)), bad)
