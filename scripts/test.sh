#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
#
# On a fresh machine it does all its own set-up: faketime, chromium and
# openssl (Debian); the venvs of Synapse, the nio test peer and the QA fault
# proxy (mitmproxy), all pinned, from PyPI; the js-sdk peers and the single
# sign-on peer (an OpenID Connect provider and puppeteer-core; pinned, npm);
# then the debug build. The
# integration tests start their own throwaway Synapses on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "System packages (faketime, chromium, openssl)"
./scripts/setup-system.sh

step "Test dependencies (Synapse, nio peer, js peers, single sign-on peer, mitmproxy)"
./scripts/setup-synapse.sh >/dev/null
./scripts/setup-peer.sh >/dev/null
./scripts/setup-js-peer.sh >/dev/null
./scripts/setup-js-peer.sh next >/dev/null
./scripts/setup-js-peer.sh sso >/dev/null
./scripts/setup-mitmproxy.sh >/dev/null

step "Vendored matrix-sdk-crypto: the published crate plus the R7 patch, nothing else"
./scripts/check-vendor.sh

step "Formatting"
cargo fmt --all -- --check

step "Build"
cargo build --locked --all-targets

step "Tests (unit + integration against Synapse)"
cargo test --locked --all-targets "$@"

# The benchmark's smoke run: tiny sizes, one run, no peers, the debug build
# the tests used. It checks that scripts/bench.sh still works end to end
# (every message still decrypts at its receiver), not the figures.
step "Benchmark smoke run (scripts/bench.sh --smoke)"
./scripts/bench.sh --smoke
