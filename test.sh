#!/usr/bin/env bash
# Set up everything the tests need and run the whole suite: ruff, mypy, pytest
# (on SQLite and on a real PostgreSQL 15 server; browser tests in Debian's chromium).
# Arguments are passed to pytest, e.g. ./test.sh -k roster
set -euo pipefail
cd "$(dirname "$0")"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "esafety needs Python 3.11 or newer (python3 is $(python3 --version))" >&2; exit 1; }

missing=()
command -v chromium >/dev/null || missing+=(chromium)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
# The chronology PDF's Unicode font (without it the PDF falls back to Helvetica, Latin-1).
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "The tests need these Debian packages: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy esafety tests bench scripts
echo "== pytest"
# One worker per core (pytest-xdist): each starts its own PostgreSQL server and browser.
# ESAFETY_TEST_WORKERS=0 runs in this process (e.g. to use a debugger).
.venv/bin/pytest -n "${ESAFETY_TEST_WORKERS:-auto}" "$@"
