#!/usr/bin/env bash
# seald quickstart: installs what it needs, builds in release mode, creates a demo under ./demo
# (or $SEALD_DEMO_DIR) and runs seald with it:
#   - a test PKI: root CA and enterprise CA (the signature trust root is demo/root.crt), a TLS CA
#     (demo/server-ca.crt) with seald's server certificate, a client certificate for a demo
#     application (demo/client.crt, demo/client.key) and one for the administrator (demo/admin.*);
#   - a SoftHSM2 token holding the seal key and the audit key, each with its certificate;
#   - seald.toml, SQLite storage, and seal 'demo-seal' with a seal image, registered over the API.
# It starts seald on 127.0.0.1:$SEALD_DEMO_PORT (default 8443), seals a sample contract with curl
# over mTLS, verifies it, prints the commands to do it yourself and the line
# `READY https://127.0.0.1:<port>`, and keeps seald in the foreground until Ctrl-C.
# Running it again reuses a complete demo and rebuilds an incomplete one.
#   deploy/quickstart.sh --setup-only   makes (or checks) the demo and exits without running seald
set -euo pipefail
SETUP_ONLY=false
case "${1:-}" in
  "") ;;
  --setup-only) SETUP_ONLY=true ;;
  *) echo "usage: $0 [--setup-only]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
. deploy/lib/common.sh

need_cargo
need_packages softhsm2 opensc openssl python3 gcc pkg-config ca-certificates curl fonts-wqy-microhei

say "building seald (release)"
cargo build --release --bins --locked
SEALCTL=$PWD/target/release/sealctl
SEALD=$PWD/target/release/seald

DEMO=${SEALD_DEMO_DIR:-$PWD/demo}
case "$DEMO" in /*) ;; *) DEMO=$PWD/$DEMO ;; esac
[ "$DEMO" != / ] || die "SEALD_DEMO_DIR must not be /"
mkdir -p "$DEMO"
DEMO=$(cd "$DEMO" && pwd)
PORT=${SEALD_DEMO_PORT:-8443}

TOKEN=seald-demo
KEY=contract-seal
AUDIT_KEY=audit-log
SUBJECT=${SEALD_DEMO_SUBJECT:-"CN=Contract Seal,O=seald demo enterprise,C=CN"}
export SOFTHSM2_CONF=$DEMO/softhsm2.conf
export SEALD_PKCS11_MODULE
SEALD_PKCS11_MODULE=$(softhsm_module)
PIN=$DEMO/secrets/user.pin
SO_PIN=$DEMO/secrets/so.pin

# The token holds each key and, under the same id, its certificate.
token_has() {
  [ -s "$PIN" ] || return 1
  "$SEALCTL" token --token "$TOKEN" objects --json --pin-file "$PIN" 2>/dev/null |
    python3 -c '
import json, sys
objects = json.load(sys.stdin)
for label in sys.argv[1:]:
    key = [o for o in objects if o["class"] == "private-key" and o["label"] == label]
    cert = [o for o in objects if o["class"] == "certificate" and o["label"] == label]
    if not (key and cert and key[0]["id"] == cert[0]["id"]):
        sys.exit(1)' "$@"
}

demo_is_complete() {
  [ -f "$DEMO/.complete" ] && [ -s "$DEMO/pki/chain.pem" ] && [ -s "$DEMO/$KEY.pem" ] \
    && [ -s "$DEMO/client.crt" ] && [ -s "$DEMO/admin.crt" ] && [ -s "$DEMO/tls/server.pem" ] \
    && token_has "$KEY" "$AUDIT_KEY"
}

# A key on the token, certified by the demo enterprise CA.
certified_key() { # LABEL ALGORITHM SUBJECT
  "$SEALCTL" token --token "$TOKEN" keygen --key "$1" --algorithm "$2" --pin-file "$PIN"
  "$SEALCTL" token --token "$TOKEN" csr --key "$1" --subject "$3" --out "$DEMO/$1.csr" --pin-file "$PIN"
  deploy/pki.sh issue "$DEMO/pki" "$DEMO/$1.csr" "$DEMO/$1.pem"
  "$SEALCTL" token --token "$TOKEN" import-cert --key "$1" --cert "$DEMO/$1.pem" \
    --chain "$DEMO/pki/chain.pem" --pin-file "$PIN"
}

if demo_is_complete; then
  say "reusing the demo in $DEMO"
else
  say "creating the demo in $DEMO"
  # Only demo-owned paths are removed: a half-made demo is rebuilt from scratch.
  rm -rf "$DEMO/tokens" "$DEMO/pki" "$DEMO/tls" "$DEMO/data" "$DEMO/.complete" "$DEMO"/*.csr \
    "$DEMO/client.crt" "$DEMO/client.key" "$DEMO/admin.crt" "$DEMO/admin.key"
  mkdir -p "$DEMO/tokens" "$DEMO/secrets"
  chmod 700 "$DEMO/secrets"
  cat > "$SOFTHSM2_CONF" <<CONF
directories.tokendir = $DEMO/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
  # Random PINs, kept in files only this user can read (never on a command line).
  (umask 077
   random_digits() { python3 -c 'import secrets, sys; print("".join(secrets.choice("0123456789") for _ in range(int(sys.argv[1]))))' "$1"; }
   random_digits 8 > "$PIN"
   random_digits 12 > "$SO_PIN")

  slot=$("$SEALCTL" token list --json | python3 -c '
import json, sys
slots = [s for s in json.load(sys.stdin)["slots"] if s["token"] and not s["token"]["initialized"]]
print(slots[0]["slot"])')
  "$SEALCTL" token init --slot "$slot" --label "$TOKEN" --yes --so-pin-file "$SO_PIN" --pin-file "$PIN"
  deploy/pki.sh init "$DEMO/pki"
  certified_key "$KEY" rsa-2048 "$SUBJECT"
  certified_key "$AUDIT_KEY" ec-p256 "CN=seald demo audit log,O=seald demo enterprise,C=CN"
  token_has "$KEY" "$AUDIT_KEY" || die "the demo token does not hold the keys and their certificates"
  # TLS: seald's server certificate, and client certificates for the demo application and the admin.
  deploy/pki.sh tls "$DEMO/tls"
  for who in client admin; do
    deploy/pki.sh client "$DEMO/tls" "$who"
    cp "$DEMO/tls/$who.crt" "$DEMO/$who.crt"
    (umask 077; cp "$DEMO/tls/$who.key" "$DEMO/$who.key")
  done
  touch "$DEMO/.complete"
fi
cp "$DEMO/tls/tls-ca.pem" "$DEMO/server-ca.crt"
cp "$DEMO/pki/root.pem" "$DEMO/root.crt"
cat "$DEMO/$KEY.pem" "$DEMO/pki/chain.pem" > "$DEMO/$KEY-chain.pem"
# Something to seal: a sample contract and a seal image.
[ -s "$DEMO/contract.pdf" ] && [ -s "$DEMO/seal.png" ] || python3 deploy/demo_files.py "$DEMO"

cat > "$DEMO/seald.toml" <<TOML
# The quickstart's configuration; deploy/seald.example.toml documents every key.
[server]
listen = "127.0.0.1:$PORT"
certificate = "tls/server.pem"
key = "tls/server.key"
client_ca = ["tls/tls-ca.pem"]
client_crl = ["tls/tls-ca.crl"]

[storage]
data_dir = "data"

[[token]]
name = "demo-token"
module = "$SEALD_PKCS11_MODULE"
label = "$TOKEN"
pin_file = "secrets/user.pin"

[audit]
token = "demo-token"
key = "$AUDIT_KEY"

[verify]
trust_roots = ["root.crt"]

[bootstrap]
admin_certificates = ["admin.crt"]
TOML

if $SETUP_ONLY; then
  say "demo ready in $DEMO (not started: run deploy/quickstart.sh to start seald with it)"
  exit 0
fi

say "starting seald on 127.0.0.1:$PORT"
OUT=$DEMO/seald.out
: > "$OUT"
"$SEALD" --config "$DEMO/seald.toml" > "$OUT" 2> "$DEMO/seald.log" &
SEALD_PID=$!
stop() { kill -TERM "$SEALD_PID" 2>/dev/null || true; wait "$SEALD_PID" 2>/dev/null || true; }
trap 'stop; exit 0' INT TERM
trap stop EXIT
# Ready when it prints where it listens (or gone, if it could not start).
for _ in $(seq 1 300); do
  grep -q '^LISTENING https://' "$OUT" && break
  kill -0 "$SEALD_PID" 2>/dev/null || { cat "$DEMO/seald.log" >&2; die "seald did not start (log above, also in $DEMO/seald.log)"; }
  sleep 0.1
done
grep -q '^LISTENING https://' "$OUT" || die "seald did not start listening within 30 s (see $DEMO/seald.log)"
URL=https://127.0.0.1:$PORT

admin() { "$SEALCTL" admin --server "$URL" --cert "$DEMO/admin.crt" --key "$DEMO/admin.key" --ca "$DEMO/server-ca.crt" "$@"; }
admin seal register --id demo-seal --name "Contract seal (demo)" --token demo-token --key "$KEY" \
  --chain "$DEMO/$KEY-chain.pem" --image "$DEMO/seal.png"
admin app register --id demo-app --name "Demo application" --cert "$DEMO/client.crt" --role signer --seal demo-seal

CURL="curl -sS --fail-with-body --cacert $DEMO/server-ca.crt --cert $DEMO/client.crt --key $DEMO/client.key"
SIGN_URL="$URL/v1/seals/demo-seal/sign?page=1&x=25&y=252&width=30&reason=Approved&document_id=2026-001"
say "sealing the sample contract over mTLS"
$CURL -H "Content-Type: application/pdf" --data-binary "@$DEMO/contract.pdf" -D "$DEMO/sign.headers" \
  -o "$DEMO/contract-sealed.pdf" "$SIGN_URL" || die "sealing the sample failed (see $DEMO/seald.log)"
verdict=$($CURL -H "Content-Type: application/pdf" --data-binary "@$DEMO/contract-sealed.pdf" "$URL/v1/verify" |
  python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["verdict"]); sys.exit(0 if r["verdict"] == "not_tampered" else 1)') \
  || die "the sealed sample does not verify: $verdict"
record=$(tr -d '\r' < "$DEMO/sign.headers" | sed -n 's/^seald-audit-record: //Ip')

cat <<MSG

seald demo running in $DEMO
  API         $URL (mTLS; server certificate from $DEMO/server-ca.crt)
  token       '$TOKEN' on SoftHSM2 (configuration $SOFTHSM2_CONF): seal key '$KEY', audit key '$AUDIT_KEY'
  seal        'demo-seal': $(openssl x509 -in "$DEMO/$KEY.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
  trust root  $DEMO/root.crt
  client      $DEMO/client.crt / $DEMO/client.key (application 'demo-app', may use demo-seal)
  admin       $DEMO/admin.crt / $DEMO/admin.key
  log         $DEMO/seald.log, data in $DEMO/data

The sample contract was sealed into $DEMO/contract-sealed.pdf (audit record $record, verdict $verdict).
Do it yourself:
  curl --cacert $DEMO/server-ca.crt --cert $DEMO/client.crt --key $DEMO/client.key \\
      -H 'Content-Type: application/pdf' --data-binary @$DEMO/contract.pdf \\
      -o sealed.pdf '$SIGN_URL'
  curl --cacert $DEMO/server-ca.crt --cert $DEMO/client.crt --key $DEMO/client.key \\
      -H 'Content-Type: application/pdf' --data-binary @sealed.pdf $URL/v1/verify
  $SEALCTL verify --trust $DEMO/root.crt sealed.pdf
  $SEALCTL audit verify --server $URL --cert $DEMO/admin.crt --key $DEMO/admin.key --ca $DEMO/server-ca.crt --trust $DEMO/root.crt

Press Ctrl-C to stop seald.
MSG
echo "READY $URL"
wait "$SEALD_PID"
