#!/usr/bin/env bash
# ratchet's main job, end to end, against a throwaway local Synapse:
# two users, an encrypted room, messages sent by one and decrypted by the
# other, with the Megolm session and message index of each.
#
# Does all its own set-up (Synapse venv, debug build) and removes the
# server and the profiles when done. Nothing outside .dev/, target/ and a
# temporary directory is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

# Bold and colour only on a terminal, and never with NO_COLOR set
# (https://no-color.org): a demo written to a file or a pipe stays text.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then B=$'\033[1m' C=$'\033[36m' R=$'\033[0m'; else B='' C='' R=''; fi
say() { printf '\n%s# %s%s\n' "$B" "$*" "$R"; }
run() { printf '%s$ %s%s\n' "$C" "$*" "$R"; "$@"; }

say "Setting up (Synapse venv and build; quick after the first time)"
./scripts/setup-synapse.sh >/dev/null
cargo build --quiet
export PATH="$root/target/debug:$PATH"

work="$(mktemp -d -t ratchet-demo-XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
hs="http://127.0.0.1:$port"
./scripts/run-synapse.sh "$work/synapse" "$port" >"$work/synapse.out" 2>&1 &
synapse_pid=$!
cleanup() {
  if [ -n "${follow_pid:-}" ]; then kill "$follow_pid" 2>/dev/null || true; fi
  kill "$synapse_pid" 2>/dev/null || true
  wait "$synapse_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say "Starting Synapse on $hs"
for _ in $(seq 1 300); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('$hs/_matrix/client/versions')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$synapse_pid" 2>/dev/null; then
    echo "Synapse failed to start:" >&2
    tail -20 "$work/synapse.out" >&2
    exit 1
  fi
  sleep 0.2
done

register() {
  python3 - "$hs" "$1" "$2" <<'PY'
import json, sys, urllib.request
hs, user, pw = sys.argv[1:]
body = json.dumps({"username": user, "password": pw, "inhibit_login": True,
                   "auth": {"type": "m.login.dummy"}}).encode()
urllib.request.urlopen(urllib.request.Request(hs + "/_matrix/client/v3/register", body,
                                              {"Content-Type": "application/json"}))
PY
}
register alice alice-password
register bob bob-password

# Each profile is one login with its own encrypted store.
export RATCHET_DATA_DIR="$work/profiles"

say "alice and bob log in (password on stdin, never on the command line)"
echo "Each first login creates the account's cross-signing identity and signs the device (MSC4153):"
echo alice-password | run ratchet --profile alice login --homeserver "$hs" --user alice --password-stdin
echo bob-password | run ratchet --profile bob login --homeserver "$hs" --user bob --password-stdin
run ratchet --profile alice identity

say "alice creates an encrypted room and invites bob"
room="$(ratchet --profile alice --json room create --name demo --encrypted --invite @bob:localhost \
  | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["room_id"])')"
echo "room: $room"
run ratchet --profile bob sync
run ratchet --profile bob room join "$room"

say "alice sends two messages from arguments and two from stdin"
run ratchet --profile alice send "$room" "Hello Bob" "This is end-to-end encrypted"
printf 'piped line one\npiped line two\n' | run ratchet --profile alice send "$room"

say "bob reads and decrypts them (session and index read from the ciphertext)"
run ratchet --profile bob messages "$room"

say "The same as JSON Lines, for scripts"
run ratchet --profile bob --json messages "$room" --limit 2

say "Follow and act at once: bob follows the room while his own profile replies from another process"
ratchet --profile bob sync --follow >"$work/follow.out" 2>"$work/follow.err" &
follow_pid=$!
for _ in $(seq 1 300); do grep -q Following "$work/follow.err" 2>/dev/null && break; sleep 0.1; done
run ratchet --profile alice send "$room" "are you watching, bob?"
echo "(the room is named demo: a name that fits one room is enough)"
run ratchet --profile bob send demo "yes, and replying from another shell"
for _ in $(seq 1 300); do grep -q "another shell" "$work/follow.out" && break; sleep 0.1; done
kill -INT "$follow_pid"
wait "$follow_pid"
echo "What the follower printed: all since bob's last sync (his other commands kept it for sync), then the new messages; each event once:"
cat "$work/follow.out"

say "Rotation (R5): the room says rotation_period_msgs=3 and rotation_period_ms=2000"
run ratchet --profile alice encrypt "$room" --rotation-msgs 3 --rotation-ms 2000 --force
run ratchet --profile alice send "$room" one two three four
run ratchet --profile alice sessions "$room"
echo "(waiting 2.1 s: older than rotation_period_ms; matrix-sdk alone would wait an hour)"
sleep 2.1
run ratchet --profile alice send "$room" "after two seconds"

say "A forced rotation, pre-shared so bob holds the key before any message uses it"
run ratchet --profile alice rotate "$room" --share
run ratchet --profile alice send "$room" "in the pre-shared session"
run ratchet --profile bob messages "$room" --limit 6

say "A wedged Olm session on purpose, and its recovery (R9-R11, R13)"
alice_device="$(ratchet --profile alice --json whoami | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])')"
run ratchet --profile bob debug forget-olm @alice:localhost "$alice_device" --yes
run ratchet --profile alice rotate "$room"
run ratchet --profile alice send "$room" "this room key goes over the broken Olm session"
run ratchet --profile bob sync
run ratchet --profile alice sync
run ratchet --profile alice send "$room" "and this one decrypts again"
run ratchet --profile bob olm @alice:localhost
run ratchet --profile bob messages "$room" --limit 2 || echo "(exit $?: the message sent over the wedge stays undecryptable; see README)"

say "Unwedging by hand: a new Olm session and an m.dummy over it; once per device per hour (R11)"
run ratchet --profile alice unwedge @bob:localhost
run ratchet --profile bob sync
run ratchet --profile alice unwedge @bob:localhost || echo "(exit $?: refused by R11; --force overrides)"

say "Emoji verification (SAS) between alice and bob, each side a process"
echo "(scripted: the two processes' emoji are compared here, then each is answered 'yes' on its stdin)"
mkfifo "$work/alice.in" "$work/bob.in"
bob_device="$(ratchet --profile bob --json whoami | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])')"
ratchet --profile bob --json verify --accept --from @alice:localhost --wait 60 \
  <"$work/bob.in" >"$work/bob.out" 2>"$work/bob.err" &
bob_pid=$!
exec 4>"$work/bob.in"
until grep -q "Waiting for a verification request" "$work/bob.err" 2>/dev/null; do sleep 0.1; done
ratchet --profile alice verify @bob:localhost "$bob_device" --wait 60 \
  <"$work/alice.in" >"$work/alice.out" 2>"$work/alice.err" &
alice_pid=$!
exec 3>"$work/alice.in"
until grep -q "Compare these emoji" "$work/alice.out" 2>/dev/null && grep -q '"type":"sas"' "$work/bob.out" 2>/dev/null; do sleep 0.1; done
sed -n '1,8p' "$work/alice.out"
bob_emoji="$(python3 -c 'import json,sys; print(" ".join(e["symbol"] for e in json.loads(open(sys.argv[1]).readline())["emoji"]))' "$work/bob.out")"
echo "bob's process shows: $bob_emoji"
echo yes >&3
echo yes >&4
wait "$alice_pid" "$bob_pid"
tail -n 1 "$work/alice.out"
run ratchet --profile alice identity @bob:localhost
run ratchet --profile alice devices @bob:localhost

say "Recovery: alice sets up a recovery key and a key backup (the key is printed once)"
recovery_key="$(ratchet --profile alice --json recovery enable | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["recovery_key"])')"
echo "recovery key: $recovery_key"
run ratchet --profile alice backup status

say "A new device of alice's: unverified, it cannot read the history until it gets the recovery key"
echo alice-password | run ratchet --profile alice-laptop login --homeserver "$hs" --user alice --password-stdin
run ratchet --profile alice-laptop messages "$room" --limit 2 || echo "(exit $?: not for this device yet)"
echo "$recovery_key" | run ratchet --profile alice-laptop recovery recover --key-stdin
run ratchet --profile alice-laptop backup restore "$room"
run ratchet --profile alice-laptop messages "$room" --limit 2

say "What the server stored: ciphertext only"
run ratchet --profile alice --json messages "$room" --limit 1 >/dev/null
# The access token is kept encrypted in session.json; whoami gives it.
QA_TOKEN="$(ratchet --profile alice whoami --access-token)" python3 - "$hs" "$room" <<'PY'
import json, os, sys, urllib.parse, urllib.request
hs, room = sys.argv[1:]
token = os.environ["QA_TOKEN"]
url = f"{hs}/_matrix/client/v3/rooms/{urllib.parse.quote(room, safe='')}/messages?dir=b&limit=1"
req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
event = json.load(urllib.request.urlopen(req))["chunk"][0]
content = event["content"]
print(f"type={event['type']} algorithm={content['algorithm']} session_id={content['session_id']}")
print(f"ciphertext={content['ciphertext'][:60]}…")
PY

say "Done. Synapse and the profiles are removed on exit."
