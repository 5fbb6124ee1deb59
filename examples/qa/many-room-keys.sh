#!/usr/bin/env bash
# More than 100 room keys waiting, processed in order (complement-crypto's
# TestToDeviceMessagesAreProcessedInOrder, element-web#25723, which skips
# itself on Rust as flaky). Alice is alone in a public room that rotates
# after every message; while her /sync answers 504 (the fault proxy), four
# users join and send 30 messages each, all four at once: 120 messages, each
# under a new room key that waits in alice's to-device queue. When her
# /sync works again, one `ratchet sync` and then `ratchet messages` must
# decrypt all 120. Synapse hands out 100 to-device events per /sync: before
# ratchet synced again after a full page, 20 of the 120 stayed undecryptable.
source "$(dirname "$0")/lib.sh"

start_proxy
login alice "$(register alice)" "$PROXY"
ROOM="$(r alice room create --encrypted --rotation-msgs 1 | q 'rs[0]["room_id"]')"
api alice PUT "/_matrix/client/v3/rooms/$(enc "$ROOM")/state/m.room.join_rules/" '{"join_rule": "public"}' >/dev/null
login dora "$(register dora)" "$PROXY"
r dora room join "$ROOM" >/dev/null

step "alice's and dora's /sync fail"
fault alice '{"method": "GET", "path": "/sync", "status": 504}' >/dev/null
fault dora '{"method": "GET", "path": "/sync", "status": 504}' >/dev/null
code=0; r alice sync >/dev/null 2>&1 || code=$?
check "her sync fails, exit 1" "$code" "1"

step "four users join and send 30 messages each, at once"
for n in 1 2 3 4; do
  login "s$n" "$(register "sender$n")" 2>/dev/null
  r "s$n" room join "$ROOM" >/dev/null
done
pids=()
for n in 1 2 3 4; do
  seq 1 30 | sed "s/^/sender $n message /" | r "s$n" --isolation all-devices send "$ROOM" >"$work/s$n.out" &
  pids+=("$!")
done
wait "${pids[@]}"
check "120 sent" "$(cat "$work"/s?.out | q 'sum(1 for x in rs if x["type"]=="sent")')" "120"
check "under 120 room keys" "$(cat "$work"/s?.out | q 'len(set(x["session_id"] for x in rs if x["type"]=="sent"))')" "120"

step "their /sync works again"
control DELETE rules >/dev/null
control DELETE log >/dev/null
synced="$(r alice sync)"
# The messages of the first response came before the keys of the second
# page: shown undecryptable, then as `late_decryption` in the same run.
check "one sync: it shows the latest messages" "$(echo "$synced" | q 'sum(1 for m in rs if m["type"] in ("message", "utd")) > 0')" "True"
check "and each undecryptable one decrypts later in the same run" "$(echo "$synced" | q 'sorted(m["event_id"] for m in rs if m["type"]=="utd") == sorted(m["event_id"] for m in rs if m["type"]=="late_decryption")')" "True"
check "it fetched every page of room keys" "$(proxy_log 'sum(1 for x in rs if x["path"].endswith("/sync") and x["status"]==200) >= 2')" "True"
out="$(r dora messages "$ROOM" --limit 200)"
check "dora's one messages decrypts all 120" "$(echo "$out" | q 'sum(1 for m in rs if m["type"]=="message")')" "120"
check "none undecryptable" "$(echo "$out" | q 'sum(1 for m in rs if m["type"]=="utd")')" "0"
check "each sender's in order" "$(echo "$out" | q 'all([int(m["body"].split()[-1]) for m in rs if m["type"]=="message" and m["body"].startswith(f"sender {n} ")] == list(range(1, 31)) for n in range(1, 5))')" "True"
