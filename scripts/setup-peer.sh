#!/usr/bin/env bash
# Installs the independent test peer's client library (matrix-nio with E2EE,
# pinned) into .dev/peer-venv (once) and prints the path. The peer
# (tests/peer/nio_peer.py) is a second Matrix client not built on matrix-sdk.
set -euo pipefail
exec "$(dirname "$0")/venv.sh" peer-venv "matrix-nio[e2e]==0.26.0"
