# Shared helpers for deploy/*.sh (sourced, not run).

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# Installs the Debian packages that are not installed yet (apt-get update once, first).
need_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get to install them"
  say "installing ${missing[*]}"
  if [ -z "${SEALD_APT_UPDATED:-}" ]; then
    as_root apt-get update -q >/dev/null
    export SEALD_APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# The Rust toolchain must be there already (rustup); everything else we install.
need_cargo() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) first"
}

# Debian's SoftHSM2 module.
softhsm_module() {
  local m
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
    [ -e "$m" ] && { echo "$m"; return 0; }
  done
  die "SoftHSM2 module not found (package softhsm2)"
}
