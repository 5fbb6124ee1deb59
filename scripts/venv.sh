#!/usr/bin/env bash
# Creates (once) a virtualenv holding pinned Python packages, and prints its path.
#
#   scripts/venv.sh NAME PACKAGE==VERSION...
#
# The venv lives in .dev/NAME inside the checkout (git-ignored); a stamp
# file records what was installed, so a changed pin reinstalls. Override the
# directory with RATCHET_DEV_DIR.
set -euo pipefail

name="${1:?usage: venv.sh NAME PACKAGE==VERSION...}"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${RATCHET_DEV_DIR:-$root/.dev}/$name"
want="$*"
stamp="$venv/.ratchet-installed"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv"
  exit 0
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "venv.sh: python3 not found; install Python 3.10+ first" >&2
  exit 1
fi
echo "venv.sh: installing $want into $venv" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
echo "$want" > "$stamp"
echo "$venv"
