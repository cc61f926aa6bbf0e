#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs the whole test suite against real Orthanc servers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
