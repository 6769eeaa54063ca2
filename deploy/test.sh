#!/usr/bin/env bash
# Installs every test dependency that is missing and runs all of seald's tests:
# formatting and clippy, unit tests, and the end-to-end tests against real SoftHSM2 tokens,
# OpenSC's pkcs11-tool, openssl and the openCryptoki software token.
#   deploy/test.sh                 everything
#   deploy/test.sh -E 'test(pool)' extra arguments go to cargo nextest (a filter, say)
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib/common.sh

need_cargo
# softhsm2: the token; opensc: pkcs11-tool; opencryptoki: a token that locks PINs;
# util-linux: setsid (tests run sealctl without a terminal); python3: answers PIN prompts
# on a pseudo-terminal (tests/pty_prompt.py) and runs the test TSA; gcc/pkg-config: -sys crates;
# poppler-utils (pdfsig, pdftoppm), libnss3-tools (certutil), qpdf: independent PDF checkers;
# python3-venv: pyHanko's venv; curl: a second RFC 3161 client;
# libtasn1-doc, shared-mime-info: real-world PDFs of the test corpus (tests/corpus/README.md);
# prometheus: promtool checks /metrics; systemd: systemd-analyze checks deploy/seald.service;
# fonts-wqy-microhei: the CJK TrueType font template fields are filled with.
need_packages softhsm2 opensc openssl opencryptoki util-linux python3 gcc pkg-config \
  ca-certificates poppler-utils libnss3-tools qpdf python3-venv curl libtasn1-doc shared-mime-info \
  prometheus systemd fonts-wqy-microhei

# pyHanko (pinned) in its own venv, made once per checkout.
VENV=$PWD/target/pyhanko-venv
if ! "$VENV/bin/python" -c 'import pyhanko' 2>/dev/null \
   || ! cmp -s tests/support/requirements.txt "$VENV/requirements.txt"; then
  say "installing pyHanko into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/support/requirements.txt
  cp tests/support/requirements.txt "$VENV/requirements.txt"
fi
export SEALD_TEST_PYTHON=$VENV/bin/python

if ! command -v cargo-nextest >/dev/null 2>&1; then
  say "installing cargo-nextest (one process per test: SoftHSM2 reads its configuration once per process)"
  cargo install --locked cargo-nextest
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  say "installing cargo-fuzz (the PDF reader is fuzzed briefly below)"
  cargo install --locked cargo-fuzz
fi

# openCryptoki's slot daemon serves its software token to every process on the machine.
# (Its socket is /var/run/pkcsslotd.socket in 3.8, /run/opencryptoki/ in later versions.)
pkcsslotd_socket() {
  local s
  for s in /run/opencryptoki/pkcsslotd.socket /var/run/pkcsslotd.socket; do
    [ -S "$s" ] && return 0
  done
  return 1
}
pkcsslotd_running() { ps -C pkcsslotd -o stat= 2>/dev/null | grep -qv '^Z'; }
start_pkcsslotd() {
  if pkcsslotd_running; then
    pkcsslotd_socket && pkcsconf -t >/dev/null 2>&1 && return 0
    say "pkcsslotd is running but unusable: restarting it"
    as_root pkill -x pkcsslotd || true
    for _ in $(seq 1 100); do
      pkcsslotd_running || break
      sleep 0.1
    done
  fi
  # Its lock and data directories come from tmpfiles.d, which a machine without a running
  # systemd never applied.
  local type path mode user group _
  while read -r type path mode user group _; do
    if [ "$type" = d ]; then as_root install -d -m "$mode" -o "$user" -g "$group" "$path"; fi
  done < /usr/lib/tmpfiles.d/opencryptoki.conf
  as_root pkcsslotd
  # Ready when a client can read the token list (a socket left by a killed daemon proves nothing).
  for _ in $(seq 1 100); do
    pkcsslotd_socket && pkcsconf -t >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "pkcsslotd started but does not answer (pkcsconf -t fails)"
}
start_pkcsslotd
if [ "$(id -u)" -ne 0 ] && ! id -nG | tr ' ' '\n' | grep -qx pkcs11; then
  die "$(id -un) must be in group pkcs11 to use openCryptoki (sudo usermod -aG pkcs11 $(id -un), then log in again)"
fi
SEALD_TEST_OPENCRYPTOKI=$(ls /usr/lib/*/opencryptoki/libopencryptoki.so.0 2>/dev/null | head -n1)
[ -n "$SEALD_TEST_OPENCRYPTOKI" ] || die "openCryptoki's libopencryptoki.so.0 not found"
export SEALD_TEST_OPENCRYPTOKI
SEALD_TEST_SOFTHSM=$(softhsm_module)
export SEALD_TEST_SOFTHSM

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "building binaries (debug for the tests, release for the quickstart test)"
cargo build --workspace --bins --locked
cargo build --release --bins --locked
say "running tests"
cargo nextest run --workspace --locked --profile ci "$@"
# The reader must survive arbitrary bytes: a short fuzzing run seeded with the corpus (the
# command for long runs is in docs/architecture.md). RUSTC_BOOTSTRAP lets the stable
# toolchain take the instrumentation flags cargo-fuzz passes.
say "fuzzing the PDF reader for ${SEALD_FUZZ_SECONDS:-30} s"
rm -rf target/fuzz-corpus && mkdir -p target/fuzz-corpus && cp tests/corpus/*.pdf target/fuzz-corpus/
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none reader ../target/fuzz-corpus -- \
  -max_total_time="${SEALD_FUZZ_SECONDS:-30}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 3)
say "all tests passed"
