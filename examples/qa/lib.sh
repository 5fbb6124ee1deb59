# Shared set-up for the QA cookbook scripts (sourced, not run).
#
# Environment:
#   RATCHET              the ratchet binary (default: `ratchet` on PATH)
#   RATCHET_HOMESERVER   a Synapse with open registration; if unset, a
#                        throwaway one is started (scripts/run-synapse.sh)
# Each script gets its own profiles directory, removed on exit.
set -euo pipefail

RATCHET="${RATCHET:-ratchet}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d -t ratchet-qa-XXXXXX)"
export RATCHET_DATA_DIR="$work/profiles"
synapse_pid=""

cleanup() {
  if [ -n "$synapse_pid" ]; then kill "$synapse_pid" 2>/dev/null || true; wait "$synapse_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${RATCHET_HOMESERVER:-}" ]; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$repo/scripts/run-synapse.sh" "$work/synapse" "$port" >"$work/synapse.out" 2>&1 &
  synapse_pid=$!
  RATCHET_HOMESERVER="http://127.0.0.1:$port"
  for _ in $(seq 1 600); do
    python3 -c "import urllib.request; urllib.request.urlopen('$RATCHET_HOMESERVER/_matrix/client/versions')" 2>/dev/null && break
    sleep 0.2
  done
fi

# step "text": what the script is doing, for the reader of its output.
step() { printf '\n== %s\n' "$*" >&2; }

# r PROFILE ARGS...: ratchet as PROFILE, JSON output.
r() { local p="$1"; shift; "$RATCHET" --profile "$p" --json "$@"; }

# q 'EXPR' < jsonl: evaluate a Python expression over the records `rs`
# (a list of dicts) read from stdin; prints the result.
q() { python3 -c "import json,sys; rs=[json.loads(l) for l in sys.stdin if l.strip()]; print($1)"; }

# check 'DESCRIPTION' ACTUAL EXPECTED
check() {
  if [ "$2" != "$3" ]; then
    printf 'FAIL: %s: expected %s, got %s\n' "$1" "$3" "$2" >&2
    exit 1
  fi
  printf 'ok: %s (%s)\n' "$1" "$2" >&2
}

# register NAME: a new user NAME-<random> on the homeserver; prints the localpart.
register() {
  python3 - "$RATCHET_HOMESERVER" "$1" <<'PY'
import json, secrets, sys, urllib.request
hs, name = sys.argv[1:]
user = f"{name}-{secrets.token_hex(4)}"
body = json.dumps({"username": user, "password": "pw-" + user, "inhibit_login": True,
                   "auth": {"type": "m.login.dummy"}}).encode()
urllib.request.urlopen(urllib.request.Request(hs + "/_matrix/client/v3/register", body,
                                              {"Content-Type": "application/json"}))
print(user)
PY
}

# login PROFILE LOCALPART; sets the variables <PROFILE>_ID and <PROFILE>_DEVICE.
login() {
  local rec
  rec="$(echo "pw-$2" | r "$1" login --homeserver "$RATCHET_HOMESERVER" --user "$2" --password-stdin)"
  printf -v "${1}_ID" '%s' "$(echo "$rec" | q 'rs[0]["user_id"]')"
  printf -v "${1}_DEVICE" '%s' "$(echo "$rec" | q 'rs[0]["device_id"]')"
}

# alice_and_bob [ROOM CREATE OPTIONS...]: both logged in, in a new encrypted
# room ($ROOM) created by alice with the given options.
alice_and_bob() {
  login alice "$(register alice)"
  login bob "$(register bob)"
  ROOM="$(r alice room create --encrypted --invite "$bob_ID" "$@" | q 'rs[0]["room_id"]')"
  r bob room join "$ROOM" >/dev/null
}

# wait_for FILE TEXT: waits (up to 60 s) until FILE contains TEXT.
wait_for() {
  for _ in $(seq 1 600); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  printf 'FAIL: no "%s" in %s:\n' "$2" "$1" >&2
  cat "$1" >&2
  exit 1
}

# api PROFILE METHOD PATH [JSON]: a client-server API request with the
# profile's access token (for what ratchet does not do on purpose: another
# client's actions, or a raw claim); prints the JSON answer.
api() {
  python3 - "$RATCHET_HOMESERVER" "$RATCHET_DATA_DIR/$1/session.json" "$2" "$3" "${4:-}" <<'PY'
import json, sys, urllib.request
hs, session, method, path, body = sys.argv[1:]
token = json.load(open(session))["access_token"]
req = urllib.request.Request(hs + path, body.encode() if body else None, method=method,
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
print(json.dumps(json.load(urllib.request.urlopen(req))))
PY
}

# enc TEXT: TEXT percent-encoded for a URL path segment.
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
