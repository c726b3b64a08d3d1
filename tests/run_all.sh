#!/usr/bin/env bash
# The whole test suite on both runtimes: Python 3.11 + TensorFlow 2.x, and Python 3.7 + TensorFlow 1.15.
# A missing Python 3.7 is reported loudly and the rest still runs; pytest finding no test is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
python311=${PYTHON:-python3}

find_python37() {
    local candidate
    for candidate in python3.7 "$(pyenv root 2>/dev/null)"/versions/3.7*/bin/python3.7 \
                     "$HOME"/.pyenv/versions/3.7*/bin/python3.7 /usr/bin/python3.7 /usr/local/bin/python3.7; do
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 7)' >/dev/null 2>&1; then
            command -v "$candidate" || echo "$candidate"
            return 0
        fi
    done
    return 1
}

# The browser test needs Debian's chromium and chromium-driver; the test itself installs nothing.
bash tests/setup_browser.sh || echo "warning: could not install chromium; the browser test will say so" >&2

status=0
summary=()
run_suite() {  # run_suite PYTHON VENV LABEL
    local python=$1 venv=$2 label=$3 rc
    if ! bash tests/setup_venv.sh "$python" "$venv"; then
        summary+=("$label: FAILED to install"); status=1; return
    fi
    "$venv/bin/python" -c 'import sys, tensorflow as tf; print("==== %s: Python %s, TensorFlow %s" % (sys.argv[1], sys.version.split()[0], tf.__version__))' "$label" 2>/dev/null
    # PYTEST_WORKERS=2 runs the test files in two pytest-xdist worker processes, one file per worker at a
    # time (a file's module fixtures and output folders stay in one process); 0, the default, runs them here.
    "$venv/bin/python" -m pytest -q -rfEs --durations=8 -n "${PYTEST_WORKERS:-0}" --dist loadfile tests
    rc=$?
    if [ $rc -eq 5 ]; then
        summary+=("$label: pytest collected no tests (counted as a failure)"); status=1
    elif [ $rc -ne 0 ]; then
        summary+=("$label: FAILED (pytest exit $rc)"); status=1
    else
        summary+=("$label: passed")
    fi
}

run_suite "$python311" .venv "TensorFlow 2.x"
if python37=$(find_python37); then
    run_suite "$python37" .venv37 "TensorFlow 1.15"
else
    echo "########################################################################" >&2
    echo "## WARNING: no Python 3.7 found (python3.7 on PATH or pyenv 3.7.x):    ##" >&2
    echo "## the TensorFlow 1.15 runtime (Ascend's) was NOT tested.              ##" >&2
    echo "########################################################################" >&2
    summary+=("TensorFlow 1.15: NOT RUN (no Python 3.7)")
fi
echo
printf '%s\n' "${summary[@]}"
exit $status
