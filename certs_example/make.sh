#!/bin/sh
# Regenerate the throwaway development material in this directory.
# None of it is a real secret: it is committed on purpose and works on no real device.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
python=${PYTHON:-"$root/.venv/bin/python"}
passphrase=walletsvc-example
pass_type_id=pass.com.example.walletsvc.demo
team_id=DEVTEAM123

# Build everything in a fresh directory first: the dev_material modules reuse files they
# find, and a half-finished run must not leave a mismatched set behind.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

PYTHONPATH="$root" "$python" -m walletsvc.apple.dev_material "$work" \
    --pass-type-id "$pass_type_id" --team-id "$team_id" --valid-days 3650

# Explicit algorithms, so OpenSSL 1.1 and 3.x produce the same modern (AES-256, PBKDF2) files.
openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 \
    -in "$work/pass-key.pem" -out "$work/pass-key-encrypted.pem" -passout "pass:$passphrase"
openssl pkcs12 -export -name "walletsvc development pass certificate" \
    -inkey "$work/pass-key.pem" -in "$work/pass-certificate.pem" \
    -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 \
    -out "$work/pass.p12" -passout "pass:$passphrase"

PYTHONPATH="$root" "$python" -m walletsvc.google.dev_material "$work/google-service-account.json"

for name in wwdr-dev-ca.pem wwdr-dev-ca-key.pem pass-certificate.pem pass-key.pem \
    pass-key-encrypted.pem pass.p12 google-service-account.json; do
    mv -f "$work/$name" "$here/$name"
done
echo "regenerated the development material in $here"
