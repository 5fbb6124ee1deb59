#!/usr/bin/env bash
# Installs the pinned Synapse into the project's own virtualenv (idempotent).
#
# The venv lives in .dev/synapse-venv inside the checkout (git-ignored), so a
# fresh clone installs it once and later runs reuse it. Override the location
# with RATCHET_SYNAPSE_VENV. Prints the venv path on stdout when done.
set -euo pipefail

SYNAPSE_VERSION="1.163.2"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${RATCHET_SYNAPSE_VENV:-$root/.dev/synapse-venv}"
stamp="$venv/.ratchet-synapse-$SYNAPSE_VERSION"

if [ -f "$stamp" ] && "$venv/bin/python" -c 'import synapse' 2>/dev/null; then
  echo "$venv"
  exit 0
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup-synapse: python3 not found; install Python 3.10+ first" >&2
  exit 1
fi

echo "setup-synapse: installing matrix-synapse==$SYNAPSE_VERSION into $venv" >&2
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$SYNAPSE_VERSION" >&2
"$venv/bin/python" -c 'import synapse; print("setup-synapse: synapse", synapse.__version__, file=__import__("sys").stderr)'
touch "$stamp"
echo "$venv"
