#!/bin/sh
# Installs Debian's chromium and chromium-driver for the browser test (tests/test_web_browser.py), if missing.
# Idempotent and quiet; never downloads a browser from anywhere but the system's apt sources.
set -e

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_browser.sh: apt-get not found; install chromium and its driver (/usr/bin/chromium, /usr/bin/chromedriver) yourself." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "setup_browser.sh: need root (or sudo) to apt-get install chromium chromium-driver." >&2
        exit 1
    fi
fi

echo "setup_browser.sh: installing chromium and chromium-driver with apt-get"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           chromium chromium-driver; } >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "setup_browser.sh: apt-get failed (output above); the browser test cannot run without chromium." >&2
    exit 1
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "setup_browser.sh: apt-get finished but /usr/bin/chromium or /usr/bin/chromedriver is still missing." >&2
    exit 1
fi
