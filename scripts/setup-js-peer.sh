#!/usr/bin/env bash
# Installs a js test peer's packages with `npm ci`, once per lock file, and
# prints the peer's directory.
#
#   scripts/setup-js-peer.sh          tests/peer/js: matrix-js-sdk 37.5.0 and
#                                     its Rust crypto, the newest release whose
#                                     `engines` allows Node 20
#   scripts/setup-js-peer.sh next     tests/peer/js-next: matrix-js-sdk 43.0.0
#                                     and crypto-wasm 18.9.0 (history sharing
#                                     on invite, MSC4268); their `engines` ask
#                                     for Node 22, which npm only warns about:
#                                     on Node 20 they run with one polyfill
#                                     (Promise.withResolvers, in js_peer.mjs)
#   scripts/setup-js-peer.sh sso      tests/peer/sso: oidc-provider 9.13.3 (the
#                                     OpenID Connect provider Synapse delegates
#                                     single sign-on to) and puppeteer-core
#                                     25.19.0 (drives Debian's chromium)
#
# Both run the same tests/peer/js/js_peer.mjs: it is copied into js-next,
# where Node resolves its imports from js-next's own node_modules.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-}" in
  "") dir="$root/tests/peer/js" ;;
  next) dir="$root/tests/peer/js-next"; cp "$root/tests/peer/js/js_peer.mjs" "$dir/js_peer.mjs" ;;
  sso) dir="$root/tests/peer/sso" ;;
  *) echo "usage: setup-js-peer.sh [next|sso]" >&2; exit 2 ;;
esac
stamp="$dir/node_modules/.ratchet-installed"
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$dir"
  exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup-js-peer.sh: node and npm are needed (Node 20 or later)" >&2
  exit 1
fi
echo "setup-js-peer.sh: npm ci in $dir" >&2
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
echo "$want" > "$stamp"
echo "$dir"
