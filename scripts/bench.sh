#!/usr/bin/env bash
# ratchet's benchmarks against the protocol floor (curl), matrix-commander-rs
# and matrix-commander, in one run on a throwaway local Synapse. Writes
# BENCHMARKS.md (and BENCHMARKS.json, the raw samples).
#
#   scripts/bench.sh            # the full run (about 40 min once installed)
#   scripts/bench.sh --smoke    # tiny sizes, one run, no peers: CI runs this
#                               # so the script cannot rot; writes to target/
#
# Extra arguments go to bench/bench.py (e.g. --runs 9, --only one_shot).
#
# It does all its own set-up: the Synapse venv, ratchet in release mode,
# matrix-commander (PyPI, pinned) in its own venv, and matrix-commander-rs
# (crates, pinned) installed with `cargo install` into a cache kept outside
# the checkout (RATCHET_BENCH_CACHE, default ~/.cache/ratchet-bench), since it
# builds slowly. If it cannot be built, that peer is skipped and the report
# says why.
set -euo pipefail
cd "$(dirname "$0")/.."

MC_VERSION=8.0.6
MCRS_VERSION=0.13.0

step() { printf '\n==> %s\n' "$*" >&2; }

smoke=0
for arg in "$@"; do [ "$arg" = --smoke ] && smoke=1; done

step "Synapse"
./scripts/setup-synapse.sh >/dev/null
command -v curl >/dev/null || { echo "bench.sh: curl is needed for the floor" >&2; exit 1; }

peers=()
if [ "$smoke" = 1 ]; then
  # The debug build the test suite made; the smoke run checks the script.
  step "Build (debug, for the smoke run)"
  cargo build --locked --bin ratchet
  exe=target/debug/ratchet
  build=debug
  out=(--out target/BENCHMARKS.smoke.md --json-out target/BENCHMARKS.smoke.json --skip-note "matrix-commander-rs=not run in a smoke run" --skip-note "matrix-commander=not run in a smoke run")
else
  step "Build (release)"
  cargo build --locked --release --bin ratchet
  exe=target/release/ratchet
  build="release, [profile.release] in Cargo.toml"
  out=(--out BENCHMARKS.md --json-out BENCHMARKS.json)

  step "matrix-commander $MC_VERSION (PyPI, own venv)"
  if mc_venv="$(./scripts/venv.sh mc-venv "matrix-commander==$MC_VERSION")"; then
    peers+=(--mc "$mc_venv/bin/matrix-commander")
  else
    peers+=(--skip-note "matrix-commander=pip install matrix-commander==$MC_VERSION failed")
  fi

  step "matrix-commander-rs $MCRS_VERSION (cargo install, cached)"
  cache="${RATCHET_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ratchet-bench}/mc-rs-$MCRS_VERSION"
  mcrs="$cache/bin/matrix-commander-rs"
  if [ ! -x "$mcrs" ]; then
    # 0.13.0 declares a newer rust-version than this toolchain but builds
    # with it; its lock file pins a crate the registry no longer serves, so
    # it resolves afresh (not --locked).
    echo "bench.sh: building matrix-commander-rs (slow, once; log: $cache.log)" >&2
    mkdir -p "$(dirname "$cache")"
    if ! cargo install matrix-commander --version "$MCRS_VERSION" --ignore-rust-version \
      --root "$cache" >"$cache.log" 2>&1; then
      echo "bench.sh: matrix-commander-rs did not build; skipping it (see $cache.log)" >&2
    fi
  fi
  if [ -x "$mcrs" ]; then
    peers+=(--mc-rs "$mcrs")
  else
    peers+=(--skip-note "matrix-commander-rs=cargo install matrix-commander $MCRS_VERSION failed here (log: $cache.log)")
  fi
fi

step "Benchmarks"
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null -- src Cargo.toml Cargo.lock)" ]; then rev="$rev+dirty"; fi
exec python3 bench/bench.py --ratchet "$exe" "${peers[@]}" "${out[@]}" --git-rev "$rev" --build "$build" \
  --command "scripts/bench.sh${*:+ $*}" "$@"
