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
proxy_pid=""
hs1_pid=""
hs2_pid=""
js_pids=""

# ratchet's stderr (status lines, expected errors) goes to this log rather
# than between the script's `ok:` lines, unless the caller redirects it
# (`2>&1`, `2>FILE`) or QA_VERBOSE is set; a failing script prints its tail.
qa_log="$work/ratchet-stderr.log"
exec 9>&2

cleanup() {
  local code=$?
  if [ "$code" -ne 0 ] && [ -s "$qa_log" ]; then
    printf -- '--- ratchet stderr, last 40 lines (%s) ---\n' "$qa_log" >&9
    tail -n 40 "$qa_log" >&9
  fi
  for pid in $js_pids $proxy_pid $synapse_pid $hs1_pid $hs2_pid; do
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  done
  [ -n "${QA_KEEP:-}" ] || rm -rf "$work"; [ -z "${QA_KEEP:-}" ] || echo "kept $work" >&2
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

# r PROFILE ARGS...: ratchet as PROFILE, JSON output. Its stderr goes to
# $qa_log when the caller left stderr as the script's own (see above).
r() {
  local p="$1"; shift
  if [ -z "${QA_VERBOSE:-}" ] && [ /dev/fd/2 -ef /dev/fd/9 ]; then
    printf '$ ratchet --profile %s --json %s\n' "$p" "$*" >>"$qa_log"
    "$RATCHET" --profile "$p" --json "$@" 2>>"$qa_log"
  else
    "$RATCHET" --profile "$p" --json "$@"
  fi
}

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

# register NAME [HOMESERVER]: a new user NAME-<random> on the homeserver
# ($RATCHET_HOMESERVER by default); prints the localpart.
register() {
  python3 - "${2:-$RATCHET_HOMESERVER}" "$1" <<'PY'
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

# login PROFILE LOCALPART [HOMESERVER]; sets the variables <PROFILE>_ID and
# <PROFILE>_DEVICE. HOMESERVER defaults to $RATCHET_HOMESERVER ("$PROXY" for
# a profile whose requests go through the fault proxy).
login() {
  local rec
  rec="$(echo "pw-$2" | r "$1" login --homeserver "${3:-$RATCHET_HOMESERVER}" --user "$2" --password-stdin)"
  printf -v "${1}_ID" '%s' "$(echo "$rec" | q 'rs[0]["user_id"]')"
  printf -v "${1}_DEVICE" '%s' "$(echo "$rec" | q 'rs[0]["device_id"]')"
}

# alice_and_bob [ROOM CREATE OPTIONS...]: both logged in (through
# $ALICE_HS and $BOB_HS when set), in a new encrypted room ($ROOM) created
# by alice with the given options.
alice_and_bob() {
  login alice "$(register alice)" "${ALICE_HS:-}"
  login bob "$(register bob)" "${BOB_HS:-}"
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
# token PROFILE: the profile's access token (kept encrypted in session.json).
token() { "$RATCHET" --profile "$1" whoami --access-token; }

api() {
  # The token in the environment, never on a command line.
  QA_TOKEN="$(token "$1")" python3 - "$RATCHET_HOMESERVER" "$2" "$3" "${4:-}" <<'PY'
import json, os, sys, urllib.request
hs, method, path, body = sys.argv[1:]
token = os.environ["QA_TOKEN"]
req = urllib.request.Request(hs + path, body.encode() if body else None, method=method,
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
print(json.dumps(json.load(urllib.request.urlopen(req))))
PY
}

# enc TEXT: TEXT percent-encoded for a URL path segment.
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# free_port: a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_proxy: the QA fault proxy (mitmproxy with examples/qa/faults.py, the
# pinned version from scripts/setup-mitmproxy.sh) in front of the homeserver;
# sets PROXY to its URL. Profiles that log in with `--homeserver "$PROXY"`
# talk through it; rules are set with `fault`.
start_proxy() {
  local venv port attempt
  venv="$("$repo/scripts/setup-mitmproxy.sh")"
  # A free port can be taken by another process before mitmdump binds it
  # (scripts run side by side in the suite): then it tries another.
  for attempt in 1 2 3; do
    port="$(free_port)"
    "$venv/bin/mitmdump" --quiet --listen-host 127.0.0.1 --listen-port "$port" \
      --mode "reverse:$RATCHET_HOMESERVER" --set confdir="$work/mitmproxy" \
      --set connection_strategy=lazy -s "$here/faults.py" >"$work/proxy.out" 2>&1 &
    proxy_pid=$!
    PROXY="http://127.0.0.1:$port"
    for _ in $(seq 1 300); do
      # The control endpoint answers only from our addon, not from a
      # stranger that took the port.
      python3 -c "import urllib.request; urllib.request.urlopen('$PROXY/_faults/held')" 2>/dev/null && return 0
      kill -0 "$proxy_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
  done
  echo "FAIL: the fault proxy did not start:" >&2
  cat "$work/proxy.out" >&2
  exit 1
}

# control METHOD PATH [JSON]: the fault proxy's control endpoint (/_faults/PATH).
# The body goes on stdin, not the command line (a rule may hold a token).
control() {
  printf '%s' "${3:-}" | python3 -c '
import json, sys, urllib.error, urllib.request
url, method = sys.argv[1:]
body = sys.stdin.read()
req = urllib.request.Request(url, body.encode() if body else None, method=method,
                             headers={"Content-Type": "application/json"})
try:
    print(json.dumps(json.load(urllib.request.urlopen(req))))
except urllib.error.HTTPError as e:
    sys.exit(f"FAIL: fault proxy: {e.read().decode()}")
' "$PROXY/_faults/$2" "$1"
}

# fault PROFILE|- RULE: a rule (examples/qa/faults.py) for the requests of
# PROFILE (its access token), or of anyone with -; prints the rule's id.
fault() {
  local rule="$2"
  if [ "$1" != "-" ]; then
    # The token and the rule on stdin, never on a command line.
    rule="$({ token "$1"; printf '%s' "$rule"; } | python3 -c '
import json, sys
who = sys.argv[1]
token = sys.stdin.readline().strip()
rule = json.load(sys.stdin)
rule.update(token=token, who=who)
print(json.dumps(rule))
' "$1")"
  fi
  control POST rules "$rule" | q 'rs[0]["id"]'
}

# proxy_log 'EXPR': a Python expression over the proxy's request log `rs`
# (method, path, who, status, rules).
proxy_log() { control GET log | python3 -c "import json,sys; rs=json.load(sys.stdin); print($1)"; }

# start_two_servers: two throwaway Synapses that federate over TLS (a CA
# made here, IP-literal server names, scripts/run-synapse.sh). Sets HS1 and
# HS2 (client URLs), HS1_NAME and HS2_NAME (server names), and hs1_pid and
# hs2_pid (`kill -STOP "$hs2_pid"` pauses a server, as complement-crypto
# pauses a container; `kill -CONT` resumes it).
start_two_servers() {
  local n attempt
  mkdir -p "$work/ca"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ratchet QA CA" \
    -keyout "$work/ca/ca.key" -out "$work/ca/ca.crt" 2>/dev/null
  for n in 1 2; do
    launch_federating "$n"
  done
  # A port taken by another process before Synapse bound it (scripts run
  # side by side in the suite) ends that server at once: it starts again on
  # other ports.
  for n in 1 2; do
    for attempt in 1 2 3; do
      up "$n" && continue 2
      launch_federating "$n"
    done
    echo "FAIL: homeserver $n did not start:" >&2
    tail -n 30 "$work/hs$n.out" >&2
    exit 1
  done
}

# launch_federating N: starts server N of start_two_servers on free ports.
launch_federating() {
  local port fport
  port="$(free_port)"
  fport="$(free_port)"
  rm -rf "$work/hs$1"
  RATCHET_SYNAPSE_FEDERATION_PORT="$fport" RATCHET_SYNAPSE_CA="$work/ca" \
    "$repo/scripts/run-synapse.sh" "$work/hs$1" "$port" >"$work/hs$1.out" 2>&1 &
  printf -v "hs${1}_pid" '%s' "$!"
  printf -v "HS$1" '%s' "http://127.0.0.1:$port"
  printf -v "HS${1}_NAME" '%s' "127.0.0.1:$fport"
}

# up N: waits (up to 120 s) until server N answers; false if it died.
up() {
  local pid="hs${1}_pid" url="HS$1"
  for _ in $(seq 1 600); do
    python3 -c "import urllib.request; urllib.request.urlopen('${!url}/_matrix/client/versions')" 2>/dev/null && return 0
    kill -0 "${!pid}" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# bodies_of PROFILE [ROOM]: the decrypted bodies PROFILE reads in ROOM
# (default $ROOM), oldest first, as a Python list.
bodies_of() { (r "$1" messages "${2:-$ROOM}" || true) | q '[m["body"] for m in rs if m["type"]=="message"]'; }

# utds_of PROFILE [ROOM]: the event ids PROFILE cannot decrypt in ROOM.
utds_of() { (r "$1" messages "${2:-$ROOM}" || true) | q '[u["event_id"] for u in rs if u["type"]=="utd"]'; }

# start_js NAME LOCALPART [HOMESERVER] [ISOLATION]: NAME is a device on
# Element's crypto stack (the pinned js-sdk peer, tests/peer/js), logged in as
# LOCALPART with a cross-signing identity as Element makes one, in device-
# isolation mode ISOLATION (exclude-insecure, Element's default, or
# all-devices). Sets <NAME>_ID and <NAME>_DEVICE; drive it with `js`.
start_js() {
  local name="$1" dir fdi fdo rec
  dir="$("$repo/scripts/setup-js-peer.sh")"
  mkfifo "$work/$name.in" "$work/$name.out"
  node "$dir/js_peer.mjs" <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.log" &
  js_pids="$js_pids $!"
  exec {fdi}>"$work/$name.in"
  exec {fdo}<"$work/$name.out"
  printf -v "JS_IN_$name" '%s' "$fdi"
  printf -v "JS_OUT_$name" '%s' "$fdo"
  rec="$(js "$name" "$(python3 -c 'import json,sys; print(json.dumps({"cmd": "login", "homeserver": sys.argv[1], "user": sys.argv[2], "password": "pw-" + sys.argv[2], "isolation": sys.argv[3], "bootstrap": True}))' "${3:-$RATCHET_HOMESERVER}" "$2" "${4:-exclude-insecure}")")"
  printf -v "${name}_ID" '%s' "$(echo "$rec" | q 'rs[0]["user_id"]')"
  printf -v "${name}_DEVICE" '%s' "$(echo "$rec" | q 'rs[0]["device_id"]')"
}

# js NAME JSON: one command to the js peer NAME (tests/peer/js/js_peer.mjs
# lists them); prints its answer, or fails the script with the peer's log.
js() {
  local in="JS_IN_$1" out="JS_OUT_$1" line=""
  printf '%s\n' "$2" >&"${!in}"
  if ! read -r -t 120 line <&"${!out}" || [ "$(echo "$line" | q 'rs[0]["ok"]')" != "True" ]; then
    printf 'FAIL: js peer %s: %s -> %s\n' "$1" "$2" "$line" >&2
    tail -n 40 "$work/$1.log" >&2
    exit 1
  fi
  echo "$line"
}

is_js() { local in="JS_IN_$1"; [ -n "${!in:-}" ]; }

# login_peer NAME LOCALPART [HOMESERVER]: NAME on ratchet, or on the js-sdk
# peer when QA_PEER=js (the suite runs such scripts both ways, as
# complement-crypto runs each scenario across its client pairs).
login_peer() {
  if [ "${QA_PEER:-ratchet}" = js ]; then start_js "$@"; else login "$@"; fi
}

# join NAME ROOM: NAME (ratchet or js) joins ROOM.
join() {
  if is_js "$1"; then
    js "$1" '{"cmd": "join", "room_id": "'"$2"'"}' >/dev/null
  else
    r "$1" room join "$2" >/dev/null
  fi
}

# text_of NAME EVENT_ID [ROOM]: what NAME reads for EVENT_ID in ROOM (default
# $ROOM): its decrypted text, UTD when NAME sees it but cannot decrypt it, or
# MISSING. The js peer waits up to 20 s for the event and its key.
text_of() {
  local room="${3:-$ROOM}"
  if is_js "$1"; then
    js "$1" '{"cmd": "messages", "room_id": "'"$room"'", "wait_for": ["'"$2"'"], "timeout_ms": 20000}' |
      q '([("UTD" if m.get("utd") else m.get("body")) for m in rs[0]["messages"] if m["event_id"]=="'"$2"'"] or ["MISSING"])[0]'
  else
    (r "$1" messages "$room" || true) |
      q '([("UTD" if m["type"]=="utd" else m.get("body")) for m in rs if m.get("event_id")=="'"$2"'" and m["type"] in ("message","utd")] or ["MISSING"])[0]'
  fi
}

# alice_and_peer [ROOM CREATE OPTIONS...]: as alice_and_bob, but bob is on
# ratchet or, with QA_PEER=js, on the js-sdk peer (Element's crypto).
alice_and_peer() {
  login alice "$(register alice)" "${ALICE_HS:-}"
  login_peer bob "$(register bob)" "${BOB_HS:-}"
  ROOM="$(r alice room create --encrypted --invite "$bob_ID" "$@" | q 'rs[0]["room_id"]')"
  join bob "$ROOM"
}

# sent_id: the event id of the `sent` record on stdin.
sent_id() { q '[x["event_id"] for x in rs if x["type"]=="sent"][0]'; }

# crowd ROOM COUNT: COUNT users, each with one device that has real keys but
# no client (examples/qa/devices.py), joined to the public room ROOM.
crowd() {
  "$("$repo/scripts/setup-synapse.sh")/bin/python" "$here/devices.py" "$RATCHET_HOMESERVER" "$1" "$2" crowd
}

# run_fix 'LINE': runs a command line ratchet suggested (a `doctor` fix or a
# hint), as a user pastes it: with its "   (why)" note cut off, in bash,
# where `ratchet` is $RATCHET.
run_fix() {
  mkdir -p "$work/bin"
  ln -sf "$(realpath "$(command -v "$RATCHET")")" "$work/bin/ratchet"
  printf 'running: %s\n' "${1%%   (*}" >&2
  PATH="$work/bin:$PATH" bash -c "${1%%   (*}"
}

# run_fix_tty 'ratchet …' ANSWER: a suggested command pasted into a
# terminal (a pty, as `script` gives), ANSWER typed at its prompt.
run_fix_tty() {
  mkdir -p "$work/bin"
  ln -sf "$(realpath "$(command -v "$RATCHET")")" "$work/bin/ratchet"
  printf 'running in a terminal: %s\n' "$1" >&2
  printf '%s\n' "$2" | PATH="$work/bin:$PATH" script -qec "$1" /dev/null
}

# verify_own NEW OLD DEVICE: profile OLD (a verified device of the same user)
# verifies OLD's fellow device DEVICE, whose profile is NEW, by emoji (SAS),
# both answered on the command line.
verify_own() {
  local user waiting
  user="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["user_id"])' "$RATCHET_DATA_DIR/$2/session.json")"
  r "$1" verify --accept --from "$user" --yes --wait 60 >"$work/accept.out" 2>"$work/accept.err" &
  waiting=$!
  wait_for "$work/accept.err" "Waiting for a verification request"
  r "$2" verify --self "$3" --yes --wait 60 >/dev/null 2>&1
  wait "$waiting"
}

# held: how many requests or responses the fault proxy holds now.
held() { control GET held | q 'sum(rs[0].values())'; }

# wait_held N: waits (up to 30 s) until the fault proxy holds N.
wait_held() {
  for _ in $(seq 1 300); do
    [ "$(held)" = "$1" ] && return 0
    sleep 0.1
  done
}

# say NAME TEXT [ROOM]: NAME (ratchet or js) sends TEXT to ROOM (default
# $ROOM); prints the event id.
say() {
  local room="${3:-$ROOM}"
  if is_js "$1"; then
    js "$1" "$(python3 -c 'import json,sys; print(json.dumps({"cmd": "send", "room_id": sys.argv[1], "text": sys.argv[2]}))' "$room" "$2")" | q 'rs[0]["event_id"]'
  else
    r "$1" send "$room" "$2" | sent_id
  fi
}
