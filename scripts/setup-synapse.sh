#!/usr/bin/env bash
# Installs the pinned Synapse into .dev/synapse-venv (once) and prints the path.
set -euo pipefail
exec "$(dirname "$0")/venv.sh" synapse-venv "matrix-synapse==1.163.2"
