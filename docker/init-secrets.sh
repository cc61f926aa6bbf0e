#!/bin/sh
# Generate the stack's secrets once (owner-only files in docker/secrets/); the admin password
# is shown once.  Existing secrets are never overwritten.
set -eu
cd "$(dirname "$0")/secrets"
umask 077
gen() { [ -s "$1" ] || { head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | head -c "$2" > "$1"; echo new; }; }
if [ "$(gen admin-password 24)" = new ]; then
    echo "Orthanc admin password (shown once, stored in docker/secrets/admin-password): $(cat admin-password)"
fi
gen db-password 32 >/dev/null
gen service-token 40 >/dev/null
[ -s gdpr-key ] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > gdpr-key; echo >> gdpr-key; }
echo "secrets ready in $(pwd)"
