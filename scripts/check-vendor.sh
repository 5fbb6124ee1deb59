#!/usr/bin/env bash
# Checks that vendor/matrix-sdk-crypto is exactly the published crate
# matrix-sdk-crypto 0.18.0 plus the patches below, in order, and nothing
# else: patches/matrix-sdk-crypto-r7.diff (R7: the Olm session that last
# received a message is the one used), then two upstream-shaped performance
# fixes (issue 33, docs/upstream-account.md): the account loaded once per
# process, and not copied or saved by a sync that leaves it unchanged. the published .crate is fetched by cargo from the registry (a
# throwaway project), its checksum compared with the one the registry
# published, extracted, patched, and compared file by file.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=matrix-sdk-crypto
VERSION=0.18.0
# The registry's checksum of the published crate (Cargo.lock had it before
# the crate was patched).
SHA256=c54afd2a326f51c13a6ad44ec86315a688fffeb3f1e287fb343e0e1836a3bdaf
PATCHES=(
  patches/matrix-sdk-crypto-r7.diff
  patches/matrix-sdk-crypto-account-loaded-once.diff
  patches/matrix-sdk-crypto-account-unchanged-by-sync.diff
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$NAME-$VERSION.crate" 2>/dev/null | head -1 || true)"
if [ -z "$crate" ]; then
  mkdir -p "$work/fetch/src"
  printf '[package]\nname = "fetch-it"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n%s = { version = "=%s", default-features = false }\n' \
    "$NAME" "$VERSION" >"$work/fetch/Cargo.toml"
  : >"$work/fetch/src/lib.rs"
  (cd "$work/fetch" && cargo fetch -q)
  crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$NAME-$VERSION.crate" | head -1)"
fi
echo "$SHA256  $crate" | sha256sum -c --quiet - || { echo "check-vendor: $crate is not the published crate" >&2; exit 1; }

tar -xzf "$crate" -C "$work"
published="$work/$NAME-$VERSION"
for p in "${PATCHES[@]}"; do
  (cd "$published" && patch -s -p1 --no-backup-if-mismatch <"$OLDPWD/$p")
done
if ! diff -r "$published" "vendor/$NAME" >"$work/diff"; then
  echo "check-vendor: vendor/$NAME is not the published crate plus ${PATCHES[*]}:" >&2
  cat "$work/diff" >&2
  exit 1
fi
echo "vendor/$NAME = $NAME $VERSION (published, sha256 $SHA256) + ${PATCHES[*]}"
