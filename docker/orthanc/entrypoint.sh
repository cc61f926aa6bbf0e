#!/bin/sh
# Secrets come from files (/run/secrets, mounted by compose), never from the image or the
# compose file.  Orthanc substitutes ${...} in its configuration with these variables.
# The configuration Orthanc runs with is the production template and the site file merged, in
# accounts mode (orthanc_gdpr.accounts_config): Orthanc's own user list off, the plugin checking
# every request against the portability service's staff accounts.
set -eu
read_secret() {  # variable name, secret file
    if [ ! -s "$2" ]; then
        echo "orthanc-gdpr: missing secret $2 (run docker/init-secrets.sh first); refusing to start" >&2
        exit 1
    fi
    export "$1=$(cat "$2")"
}
read_secret ORTHANC_GDPR_DB_PASSWORD /run/secrets/db-password
for secret in orthanc-credential service-token; do
    [ -s "/run/secrets/$secret" ] || { echo "orthanc-gdpr: missing secret /run/secrets/$secret; refusing to start" >&2; exit 1; }
done
umask 077
config=$(mktemp -d)/orthanc.json
/opt/orthanc-gdpr/.venv/bin/python -m orthanc_gdpr.accounts_config /etc/orthanc-gdpr/orthanc.production.json \
    /etc/orthanc-gdpr/site.json > "$config"
exec Orthanc "$config"
