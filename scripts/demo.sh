#!/usr/bin/env bash
# The demo: a simulated couple breathing with the orb, and the therapist's dashboard.
# Extra arguments go to `coach demo` (e.g. --scenario anchor-flip --speed 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ "$(uname)" = Linux ]; then
    echo "demo: no screen found (DISPLAY is not set); running the simulated session headless."
    echo "demo: on a desktop, run: .venv/bin/coach demo"
    exec .venv/bin/coach demo --headless --speed max "$@"
fi
exec .venv/bin/coach demo "$@"
