#!/usr/bin/env bash
# seald benchmarks, each against the physical limit (and peers) measured in the same run.
#   bench/run.sh pkcs11 [--seconds S] [--rounds N]
#       C_Sign/s through seald's token pool vs a bare cryptoki loop, 1 and 2 sessions,
#       RSA-2048 and P-256 (budget: the pool costs < 5 %).
#   bench/run.sh pades [--size-mib N] [--iterations N] [--rounds N]
#       signing a 1-page and a 50 MiB PDF vs C_Sign, sha256sum + cp and pyHanko on the same
#       token (budgets: ≤ 0.3 ms besides C_Sign; ≤ 1.3 × sha256sum + cp; peak RSS ≤ 64 MiB).
#   bench/run.sh daemon [--seconds S] [--rounds N]
#       1-page B-B signing over mTLS with keep-alive through seald vs bare C_Sign with the same
#       sessions, and pyHanko on the same token (budget: ≥ 80 % of bare C_Sign, judged for
#       session counts below the host's cores: beyond, bare C_Sign alone fills the machine).
#   bench/run.sh jobs [--rows N] [--sessions N]
#       a batch job of 10,000 rows (filled with Chinese text, sealed B-B) through seald vs bare
#       C_Sign with the same sessions (default 1), seald's peak RSS, and pyHanko on the same
#       token (budget: ≥ 70 % of bare C_Sign, judged as for the daemon).
# Each exits 1 when over budget. Figures go into docs/performance.md with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib/common.sh
need_cargo
what=${1:-pkcs11}
[ $# -gt 0 ] && shift
extra=()
case $what in
  pkcs11)
    need_packages softhsm2 gcc pkg-config
    cargo build --release --locked -p seald-bench
    ;;
  pades|daemon|jobs)
    need_packages softhsm2 gcc pkg-config openssl time python3-venv python3 fonts-wqy-microhei
    cargo build --release --locked --bins
    # The peer: pyHanko over python-pkcs11, pinned, in its own venv.
    VENV=$PWD/target/bench-venv
    if ! "$VENV/bin/python" -c 'import pyhanko, pkcs11' 2>/dev/null \
       || ! cmp -s bench/requirements.txt "$VENV/requirements.txt"; then
      rm -rf "$VENV"
      python3 -m venv "$VENV"
      (cd bench && "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt)
      cp bench/requirements.txt "$VENV/requirements.txt"
    fi
    extra=(--python "$VENV/bin/python")
    ;;
  *) die "unknown benchmark '$what' (pkcs11, pades, daemon or jobs)" ;;
esac
echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
target/release/seald-bench "$what" --module "$(softhsm_module)" "${extra[@]}" "$@"
