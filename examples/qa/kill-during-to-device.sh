#!/usr/bin/env bash
# To-device events unprocessed at a kill (complement-crypto's
# TestUnprocessedToDeviceMessagesArentLostOnRestart, element-web#23113). In a
# room that rotates after every message, bob is away while alice floods him
# with 60 to-device key-request cancellations and then sends a message, whose
# new room key waits in his to-device queue behind them. Bob's next `sync`
# gets the first /sync response with an encrypted event (held by the fault
# proxy, then released) and is SIGKILLed at a chosen moment after it
# arrives (0 to 200 ms); each round adds to the queue, and at the end bob
# runs again on the same profile. The
# server deletes to-device events only once a later /sync acknowledges them,
# so none is lost: every message decrypts. QA_PEER has no effect: this is
# about bob's own store.
source "$(dirname "$0")/lib.sh"

start_proxy
BOB_HS="$PROXY" alice_and_bob --rotation-msgs 1
first="$(r alice send "$ROOM" "Hello World!" | sent_id)"
check "bob reads the first message" "$(text_of bob "$first")" "Hello World!"

# flood TAG: 60 to-device key-request cancellations from alice to every
# device of bob's, one request each.
flood() {
  QA_TOKEN="$(token alice)" python3 - "$RATCHET_HOMESERVER" "$bob_ID" "$1" <<'PY'
import json, os, sys, urllib.request
hs, bob, tag = sys.argv[1:]
token = os.environ["QA_TOKEN"]
for n in range(60):
    body = {"messages": {bob: {"*": {"action": "request_cancellation", "request_id": f"r{tag}-{n}",
                                     "requesting_device_id": "X"}}}}
    urllib.request.urlopen(urllib.request.Request(
        f"{hs}/_matrix/client/v3/sendToDevice/m.room_key_request/flood-{tag}-{n}", json.dumps(body).encode(),
        method="PUT", headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}))
PY
}

# What bob must read at the end: every message alice sent.
expected=("Hello World!")
for delay in 0 20 50 100 200; do
  step "kill bob $delay ms after the /sync that brings the room key"
  # A round whose response the proxy did not get to hold (bob's sync went
  # through, seen once in several hundred rounds) killed nothing: it is run
  # again, with a new flood and message, up to three times in all.
  for try in 1 2 3; do
    text="Kick to make a new room key! ($delay ms)"
    [ "$try" = 1 ] || text="Kick to make a new room key! ($delay ms, try $try)"
    flood "$delay-$try"
    r alice send "$ROOM" "$text" >/dev/null
    expected+=("$text")
    rule="$(fault bob '{"method": "GET", "path": "/sync", "contains": "m.room.encrypted", "hold": true, "times": 1}')"
    "$RATCHET" --profile bob --json sync >"$work/sync.out" 2>&1 &
    pid=$!
    wait_held 1
    [ "$(held)" = 1 ] && break
    # Not held: say what bob's sync said (it may have ended on its own).
    echo "bob's sync (pid $pid, $(kill -0 "$pid" 2>/dev/null && echo running || echo ended)) was not held:" >&2
    head -c 2000 "$work/sync.out" >&2
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    control DELETE "rules/$rule" >/dev/null
  done
  check "its response is held" "$(held)" "1"
  control POST "release/$rule" >/dev/null
  sleep "$(python3 -c "print($delay / 1000)")"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  control DELETE "rules/$rule" >/dev/null
done

step "bob runs again"
bodies="$(bodies_of bob)"
want="$(printf '%s\n' "${expected[@]}" | python3 -c 'import sys; print([l.rstrip("\n") for l in sys.stdin])')"
check "every message decrypts" "$bodies" "$want"
check "each under its own room key" "$(r bob messages "$ROOM" | q 'len(set(m["session_id"] for m in rs if m["type"]=="message"))')" "${#expected[@]}"
