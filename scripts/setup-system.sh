#!/usr/bin/env bash
# System packages the test suite needs, from Debian's archive, installed
# once (as root, as on the CI machine) when missing:
#
#   faketime   runs one ratchet process with its clock moved forward, so a
#              test can show what matrix-sdk does with an Olm session that is
#              over an hour old (tests/olm.rs) without waiting an hour.
#   chromium   the real browser single sign-on is tested with (headless,
#              driven by tests/peer/sso/browser.mjs).
#   openssl    certificates of a test CA (TLS homeservers, server discovery).
set -euo pipefail

missing=()
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system.sh: need ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "setup-system.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq "${missing[@]}" >&2
