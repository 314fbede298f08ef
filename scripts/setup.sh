#!/usr/bin/env bash
# Installs what coach needs into ./.venv (and, as root on Debian, the few system
# packages Qt and the MQTT tests need). Safe to run again: it only redoes what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
quiet() { grep -v "^WARNING: Location" || true; }  # pip's notes about absent local mirrors
# chromium: the report test renders `coach report` pages in a real headless browser
# dbus-daemon: the simulated BlueZ of tests/test_bluez.py runs on a private bus
DEB_PACKAGES=(mosquitto dbus-daemon xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0
              libxkbcommon-x11-0 libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3
              fonts-dejavu-core openssl chromium)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${DEB_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
elif ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "setup: not root: install these yourself if tests need them: ${DEB_PACKAGES[*]}" >&2
fi

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: coach needs Python 3.11 or newer ($("$PY" --version) found)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.coach-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing coach and its dependencies into .venv (a few minutes the first time)"
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | quiet
    .venv/bin/python -m pip install -q -e '.[test]' 2>&1 | quiet
    .venv/bin/python -c 'import coach, PySide6, pyqtgraph, qasync, aiomqtt, bleak, scipy' 
    touch "$stamp"
fi
