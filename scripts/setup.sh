#!/usr/bin/env bash
# Installs everything orthanc-gdpr needs on a fresh Debian 12 machine, and nothing twice:
# Debian packages (Orthanc 1.10, its Python plugin 4.0, DCMTK, dicom3tools), then a virtual
# environment built on the system Python 3.11 (the same interpreter the Orthanc Python plugin
# embeds, so the plugin can import the venv's packages), then the project itself in editable mode.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

apt_packages=(orthanc orthanc-python orthanc-dicomweb orthanc-postgresql dcmtk dicom3tools python3-venv python3-dev fonts-dejavu-core fonts-liberation chromium chromium-driver nodejs)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv on /usr/bin/python3"
    /usr/bin/python3 -m venv "$venv"
fi
stamp="$venv/.orthanc-gdpr-installed"
extras="${ORTHANC_GDPR_EXTRAS:-test}"
want="$(sha256sum pyproject.toml | cut -c1-64) $extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing Python packages ($extras)"
    "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
    "$venv/bin/pip" install -q --disable-pip-version-check -e ".[$extras]"
    echo "$want" > "$stamp"
fi
# axe-core (the WCAG 2.1 AA check the browser tests inject), pinned by tests/js/package-lock.json
# (Debian's nodejs lacks npm, which is its own package; other nodejs builds bring it along)
if ! command -v npm >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends npm
fi
js="$root/tests/js"
js_want="$(sha256sum "$js/package-lock.json" | cut -c1-64)"
if [ ! -f "$js/node_modules/.orthanc-gdpr-installed" ] || [ "$(cat "$js/node_modules/.orthanc-gdpr-installed")" != "$js_want" ]; then
    echo "setup: installing test JavaScript (npm ci in tests/js)"
    npm ci --prefix "$js" --no-audit --no-fund --loglevel=error
    echo "$js_want" > "$js/node_modules/.orthanc-gdpr-installed"
fi
echo "setup: ready"
