#!/usr/bin/env bash
# Creates .venv (once) and installs the project, its `shopvec` command and its test tools into it.
# Safe to run again: an existing venv is reused and pip skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# torch 2.14.1 and torchvision 0.29.1 install from this machine's disk for Python 3.11.
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# pip names each extra package index it cannot reach ("Location ... is ignored"): noise, not an error.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2 || true)
