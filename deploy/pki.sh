#!/usr/bin/env bash
# A small test PKI for seald demos and tests, made with openssl only:
#   deploy/pki.sh init DIR                      root CA + enterprise CA under DIR (kept if present)
#   deploy/pki.sh issue DIR REQ.pem OUT.pem     issue a seal certificate for a PKCS#10 request
#   deploy/pki.sh tsa DIR                       a time-stamping authority (tsa.key, tsa.pem and
#                                               tsa.cnf for `openssl ts -reply -config DIR/tsa.cnf`)
#   deploy/pki.sh tls DIR                       a TLS CA (tls-ca.pem) for seald's API and its
#                                               server certificate for localhost/127.0.0.1
#                                               (server.pem, server.key) and an empty CRL (tls-ca.crl)
#   deploy/pki.sh client DIR NAME [expired]     a client certificate NAME.crt / NAME.key from the TLS CA
#   deploy/pki.sh revoke DIR NAME               revoke NAME.crt and rewrite tls-ca.crl
# DIR gets root.pem, ca.pem (the enterprise CA) and chain.pem (enterprise CA, then root).
# Seal certificates carry keyUsage digitalSignature+nonRepudiation and extendedKeyUsage
# emailProtection+documentSigning (poppler/NSS want emailProtection on PDF signers) and no
# CRL/OCSP URLs (validators would hard-fail on an unreachable responder).
# This is a demo/test CA: its keys sit in plain files. Real seal certificates come from your CA.
set -euo pipefail

usage() { echo "usage: $0 init DIR | issue DIR REQ.pem OUT.pem | tsa DIR | tls DIR | client DIR NAME [expired] | revoke DIR NAME" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2

ext_file() {
  cat > "$dir/ext.cnf" <<'CNF'
[root]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ca]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[seal]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = emailProtection, 1.3.6.1.5.5.7.3.36
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[tsa]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
}

# `openssl ca` for the TLS CA: it keeps an index, so certificates can be revoked and listed in a CRL.
ca_conf() {
  cat > "$dir/tls-ca.cnf" <<CNF
[ ca ]
default_ca = tls_ca
[ tls_ca ]
dir = $dir
database = $dir/tls-index.txt
new_certs_dir = $dir/tls-issued
certificate = $dir/tls-ca.pem
private_key = $dir/tls-ca.key
serial = $dir/tls-serial
crlnumber = $dir/tls-crlnumber
default_md = sha256
default_days = 825
default_crl_days = 3650
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = supplied
organizationName = optional
countryName = optional
CNF
}

serial() { echo "0x$(openssl rand -hex 16)"; }

case $cmd in
  init)
    mkdir -p "$dir"
    if [ -s "$dir/root.pem" ] && [ -s "$dir/ca.pem" ] && [ -s "$dir/ca.key" ] && [ -s "$dir/chain.pem" ]; then
      exit 0
    fi
    ext_file
    umask 077
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$dir/root.key" 2>/dev/null
    openssl req -new -x509 -key "$dir/root.key" -subj "/C=CN/O=seald demo/CN=seald demo root CA" \
      -days 3650 -sha256 -set_serial "$(serial)" -extensions root -config <(cat /etc/ssl/openssl.cnf "$dir/ext.cnf") \
      -out "$dir/root.pem"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$dir/ca.key" 2>/dev/null
    openssl req -new -key "$dir/ca.key" -subj "/C=CN/O=seald demo/CN=seald demo enterprise CA" -out "$dir/ca.csr"
    openssl x509 -req -in "$dir/ca.csr" -CA "$dir/root.pem" -CAkey "$dir/root.key" -set_serial "$(serial)" \
      -days 1825 -sha256 -extfile "$dir/ext.cnf" -extensions ca -out "$dir/ca.pem" 2>/dev/null
    cat "$dir/ca.pem" "$dir/root.pem" > "$dir/chain.pem"
    chmod 644 "$dir/root.pem" "$dir/ca.pem" "$dir/chain.pem"
    ;;
  issue)
    [ $# -eq 4 ] || usage
    req=$3 out=$4
    [ -s "$dir/ca.key" ] || { echo "$0: no CA in $dir: run '$0 init $dir' first" >&2; exit 1; }
    ext_file
    openssl req -in "$req" -verify -noout 2>/dev/null || { echo "$0: $req is not a valid, self-signed request" >&2; exit 1; }
    openssl x509 -req -in "$req" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "$(serial)" \
      -days 730 -sha256 -extfile "$dir/ext.cnf" -extensions seal -out "$out.tmp" 2>/dev/null
    mv "$out.tmp" "$out"
    ;;
  tsa)
    [ -s "$dir/ca.key" ] || { echo "$0: no CA in $dir: run '$0 init $dir' first" >&2; exit 1; }
    if [ -s "$dir/tsa.pem" ] && [ -s "$dir/tsa.cnf" ]; then exit 0; fi
    ext_file
    (umask 077; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/tsa.key" 2>/dev/null)
    openssl req -new -key "$dir/tsa.key" -subj "/C=CN/O=seald demo/CN=seald demo TSA" -out "$dir/tsa.csr"
    openssl x509 -req -in "$dir/tsa.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "$(serial)" \
      -days 1825 -sha256 -extfile "$dir/ext.cnf" -extensions tsa -out "$dir/tsa.pem" 2>/dev/null
    echo 01 > "$dir/tsaserial"
    cat > "$dir/tsa.cnf" <<CNF
[ tsa ]
default_tsa = seald_demo_tsa
[ seald_demo_tsa ]
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/chain.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.55555.1.1
other_policies = 1.3.6.1.4.1.55555.1.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
CNF
    ;;
  tls)
    if [ -s "$dir/tls-ca.pem" ] && [ -s "$dir/server.pem" ] && [ -s "$dir/tls-ca.crl" ]; then exit 0; fi
    mkdir -p "$dir/tls-issued"
    ext_file; ca_conf
    : > "$dir/tls-index.txt"; echo 1000 > "$dir/tls-serial"; echo 1000 > "$dir/tls-crlnumber"
    (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/tls-ca.key" 2>/dev/null)
    openssl req -new -x509 -key "$dir/tls-ca.key" -subj "/O=seald demo/CN=seald demo TLS CA" \
      -days 3650 -sha256 -set_serial "$(serial)" -extensions root -config <(cat /etc/ssl/openssl.cnf "$dir/ext.cnf") \
      -out "$dir/tls-ca.pem"
    (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/server.key" 2>/dev/null)
    openssl req -new -key "$dir/server.key" -subj "/O=seald demo/CN=localhost" -out "$dir/server.csr"
    openssl ca -batch -notext -config "$dir/tls-ca.cnf" -extfile "$dir/ext.cnf" -extensions server \
      -in "$dir/server.csr" -out "$dir/server.pem" 2>/dev/null
    openssl ca -gencrl -config "$dir/tls-ca.cnf" -out "$dir/tls-ca.crl" 2>/dev/null
    ;;
  client)
    [ $# -ge 3 ] || usage
    name=$3
    [ -s "$dir/tls-ca.key" ] || { echo "$0: no TLS CA in $dir: run '$0 tls $dir' first" >&2; exit 1; }
    ext_file; ca_conf
    (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null)
    openssl req -new -key "$dir/$name.key" -subj "/O=seald demo/CN=$name" -out "$dir/$name.csr"
    dates=()
    if [ "${4:-}" = expired ]; then dates=(-startdate 20200101000000Z -enddate 20210101000000Z); fi
    openssl ca -batch -notext -config "$dir/tls-ca.cnf" -extfile "$dir/ext.cnf" -extensions client \
      "${dates[@]}" -in "$dir/$name.csr" -out "$dir/$name.crt" 2>/dev/null
    ;;
  revoke)
    [ $# -eq 3 ] || usage
    ca_conf
    openssl ca -config "$dir/tls-ca.cnf" -revoke "$dir/$3.crt" 2>/dev/null
    openssl ca -gencrl -config "$dir/tls-ca.cnf" -out "$dir/tls-ca.crl" 2>/dev/null
    ;;
  *) usage ;;
esac
