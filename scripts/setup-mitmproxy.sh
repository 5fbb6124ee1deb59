#!/usr/bin/env bash
# Installs the pinned mitmproxy (the QA fault proxy, examples/qa/faults.py)
# into .dev/mitmproxy-venv (once) and prints the path.
set -euo pipefail
exec "$(dirname "$0")/venv.sh" mitmproxy-venv "mitmproxy==11.0.2"
