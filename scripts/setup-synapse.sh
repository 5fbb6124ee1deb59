#!/usr/bin/env bash
# Installs the pinned Synapse into .dev/synapse-venv (once) and prints the path;
# with its `oidc` extra (authlib), for the single sign-on tests (tests/sso.rs).
set -euo pipefail
exec "$(dirname "$0")/venv.sh" synapse-venv "matrix-synapse[oidc]==1.163.2"
