#!/usr/bin/env bash
# seald quickstart: installs what it needs, builds in release mode, and creates a demo under
# ./demo (or $SEALD_DEMO_DIR): a SoftHSM2 token, a test PKI (root CA, enterprise CA), a seal
# key generated on the token with its certificate and chain imported. Running it again reuses
# a complete demo and rebuilds an incomplete one.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib/common.sh

need_cargo
need_packages softhsm2 opensc openssl python3 gcc pkg-config ca-certificates

say "building seald (release)"
cargo build --release --bins --locked
SEALCTL=$PWD/target/release/sealctl

DEMO=${SEALD_DEMO_DIR:-$PWD/demo}
case "$DEMO" in /*) ;; *) DEMO=$PWD/$DEMO ;; esac
[ "$DEMO" != / ] || die "SEALD_DEMO_DIR must not be /"
mkdir -p "$DEMO"
DEMO=$(cd "$DEMO" && pwd)

TOKEN=seald-demo
KEY=contract-seal
SUBJECT=${SEALD_DEMO_SUBJECT:-"CN=Contract Seal,O=seald demo enterprise,C=CN"}
export SOFTHSM2_CONF=$DEMO/softhsm2.conf
export SEALD_PKCS11_MODULE
SEALD_PKCS11_MODULE=$(softhsm_module)
PIN=$DEMO/secrets/user.pin
SO_PIN=$DEMO/secrets/so.pin

# The token holds the seal key and, under the same id, its certificate.
token_has_seal() {
  [ -s "$PIN" ] || return 1
  "$SEALCTL" token --token "$TOKEN" objects --json --pin-file "$PIN" 2>/dev/null |
    python3 -c '
import json, sys
objects = json.load(sys.stdin)
key = [o for o in objects if o["class"] == "private-key" and o["label"] == sys.argv[1]]
cert = [o for o in objects if o["class"] == "certificate" and o["label"] == sys.argv[1]]
sys.exit(0 if key and cert and key[0]["id"] == cert[0]["id"] else 1)' "$KEY"
}

demo_is_complete() {
  [ -f "$DEMO/.complete" ] && [ -s "$DEMO/pki/chain.pem" ] && [ -s "$DEMO/$KEY.pem" ] && token_has_seal
}

if demo_is_complete; then
  say "reusing the demo in $DEMO"
else
  say "creating the demo in $DEMO"
  # Only demo-owned paths are removed: a half-made demo is rebuilt from scratch.
  rm -rf "$DEMO/tokens" "$DEMO/pki" "$DEMO/.complete" "$DEMO/$KEY.csr"
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
  "$SEALCTL" token --token "$TOKEN" keygen --key "$KEY" --algorithm rsa-2048 --pin-file "$PIN"
  deploy/pki.sh init "$DEMO/pki"
  "$SEALCTL" token --token "$TOKEN" csr --key "$KEY" --subject "$SUBJECT" --out "$DEMO/$KEY.csr" --pin-file "$PIN"
  deploy/pki.sh issue "$DEMO/pki" "$DEMO/$KEY.csr" "$DEMO/$KEY.pem"
  "$SEALCTL" token --token "$TOKEN" import-cert --key "$KEY" --cert "$DEMO/$KEY.pem" \
    --chain "$DEMO/pki/chain.pem" --pin-file "$PIN"
  token_has_seal || die "the demo token does not hold the seal key and its certificate"
  touch "$DEMO/.complete"
fi
# Something to seal: a sample contract and a seal image.
[ -s "$DEMO/contract.pdf" ] && [ -s "$DEMO/seal.png" ] || python3 deploy/demo_files.py "$DEMO"

cat <<MSG

seald demo ready in $DEMO
  token       '$TOKEN' on SoftHSM2 (configuration $SOFTHSM2_CONF)
  seal key    '$KEY' (RSA-2048, generated on the token, never extractable)
  certificate $(openssl x509 -in "$DEMO/$KEY.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
              issued by the demo enterprise CA; chain in $DEMO/pki/chain.pem, root in $DEMO/pki/root.pem
  PINs        $PIN (user), $SO_PIN (SO)

  samples     $DEMO/contract.pdf, $DEMO/seal.png

Look at it, seal the sample contract and check it:
  export SOFTHSM2_CONF=$SOFTHSM2_CONF SEALD_PKCS11_MODULE=$SEALD_PKCS11_MODULE
  $SEALCTL token --token $TOKEN objects --pin-file $PIN
  $SEALCTL sign --token $TOKEN --key $KEY --pin-file $PIN --image $DEMO/seal.png \\
      --page 1 --x 25 --y 252 --width 30 --date-line $DEMO/contract.pdf -o $DEMO/contract-sealed.pdf
  $SEALCTL verify --trust $DEMO/pki/root.pem $DEMO/contract-sealed.pdf
MSG
