#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs the main job on embedded defaults:
# a native Orthanc (Debian package, SQLite index) with the orthanc-gdpr plugin, on loopback,
# authentication on. Extra arguments go to `orthanc-gdpr serve` (e.g. --orthanc-http-port 8042).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/orthanc-gdpr" serve --data-dir "${ORTHANC_GDPR_DATA:-$root/data}" "$@"
