#!/usr/bin/env bash
# Installs the js test peer's packages (matrix-js-sdk 37.5.0 and its Rust
# crypto, pinned by tests/peer/js/package-lock.json) with `npm ci`, once per
# lock file, and prints the peer's directory. matrix-js-sdk 37.5.0 is the
# newest release whose `engines` allows Node 20.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/tests/peer/js"
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
