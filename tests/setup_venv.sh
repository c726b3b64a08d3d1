#!/usr/bin/env bash
# Creates (or updates) a virtual environment with the project's requirements: setup_venv.sh PYTHON VENV.
# Python 3.7 gets constraints-py37.txt (the TensorFlow 1.15 stack) so pip resolves in seconds.
set -euo pipefail
python=$1 venv=$2
cd "$(dirname "$0")/.."
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
constraints=()
[ "$version" = 3.7 ] && constraints=(-c constraints-py37.txt)
echo "setting up $venv with Python $version ($python)"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
log="$venv/pip-install.log"
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q "${constraints[@]}" \
        -r requirements.txt -r requirements-test.txt >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" | tail -30 >&2
    echo "pip install into $venv failed (full log: $log)" >&2
    exit 1
fi
