#!/bin/sh
# Secrets come from files (/run/secrets, mounted by compose), never from the image or the
# compose file.  Orthanc substitutes ${...} in its configuration with these variables.
set -eu
read_secret() {  # variable name, secret file
    if [ ! -s "$2" ]; then
        echo "orthanc-gdpr: missing secret $2 (run docker/init-secrets.sh first); refusing to start" >&2
        exit 1
    fi
    export "$1=$(cat "$2")"
}
read_secret ORTHANC_GDPR_ADMIN_PASSWORD /run/secrets/admin-password
read_secret ORTHANC_GDPR_DB_PASSWORD /run/secrets/db-password
exec Orthanc "$@"
