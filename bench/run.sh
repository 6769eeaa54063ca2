#!/usr/bin/env bash
# seald benchmarks, each against the physical limit measured in the same run.
#   bench/run.sh [pkcs11] [--seconds S] [--rounds N]
# pkcs11: C_Sign/s through seald's token pool vs a bare cryptoki loop on the same fresh
# SoftHSM2 token, 1 and 2 sessions, RSA-2048 and P-256 (the pool should cost < 5 %).
# Figures go into docs/performance.md by hand, with the machine they came from.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib/common.sh
need_cargo
need_packages softhsm2 gcc pkg-config
cargo build --release --locked -p seald-bench
what=${1:-pkcs11}
[ $# -gt 0 ] && shift
echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
target/release/seald-bench "$what" --module "$(softhsm_module)" "$@"
