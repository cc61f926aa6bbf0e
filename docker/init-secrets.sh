#!/bin/sh
# Generate the stack's secrets once (owner-only files in docker/secrets/).  Existing secrets are
# never overwritten, and none is printed: people log in with their own staff accounts, the first
# of which the DPO creates on a terminal (see below).
set -eu
cd "$(dirname "$0")/secrets"
umask 077
gen() { [ -s "$1" ] || head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | head -c "$2" > "$1"; }
gen db-password 32
gen service-token 40
gen orthanc-credential 40
[ -s gdpr-key ] || { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > gdpr-key; echo >> gdpr-key; }
echo "secrets ready in $(pwd)"
echo "first dpo account: docker compose -f docker/compose.yml exec service orthanc-gdpr users add NAME --role dpo"
