#!/usr/bin/env bash
# Set up esafety in .venv and run it for a demo school on localhost (SQLite; no root needed).
# Arguments are passed to `esafety serve`, e.g. ./run.sh --port 8081
set -euo pipefail
cd "$(dirname "$0")"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "esafety needs Python 3.11 or newer (python3 is $(python3 --version))" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
exec .venv/bin/esafety --data "${ESAFETY_DATA:-./data}" serve --demo "$@"
