#!/usr/bin/env bash
# Set everything up (scripts/setup.sh), then run the tests; extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/python" -m pytest -q "$@"
