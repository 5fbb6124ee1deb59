#!/usr/bin/env bash
# Two processes see the one-time-key count drop while /keys/upload is slow
# (the CLI analog of complement-crypto's TestNotificationClientDupeOTKUpload,
# rust-sdk#1415: two sync loops on one store both uploading keys, and the
# server refusing the second with a 400 "already exists"). Bob claims 30 of
# alice's one-time keys; then alice's `sync --follow` and three other
# commands that sync (`room list`: one `sync` delivers a profile's records
# at a time, so the others are not `sync`s) on the same profile all run
# while the fault proxy holds each
# answer to her /keys/upload for 4 s. ratchet lets one process at a time
# touch the store, so the keys are uploaded once: every upload is a 200,
# and the new keys work (carol's first message reaches alice).
source "$(dirname "$0")/lib.sh"

start_proxy
login alice "$(register alice)" "$PROXY"
login bob "$(register bob)"
claim='{"one_time_keys": {"'"$alice_ID"'": {"'"$alice_DEVICE"'": "signed_curve25519"}}}'
for _ in $(seq 1 30); do api bob POST /_matrix/client/v3/keys/claim "$claim" >/dev/null; done
control DELETE log >/dev/null
fault alice '{"method": "POST", "path": "/keys/upload$", "phase": "response", "delay_ms": 4000}' >/dev/null

step "alice's follower and three other syncing commands, at once"
"$RATCHET" --profile alice --json sync --follow >"$work/follow.out" 2>"$work/follow.err" &
follower=$!
pids=()
for n in 1 2 3; do
  r alice room list >"$work/sync$n.out" 2>&1 &
  pids+=("$!")
done
wait "${pids[@]}"
# SIGTERM is caught (and it stops between turns) once it says it follows.
wait_for "$work/follow.err" "Following"
kill -TERM "$follower"
code=0; wait "$follower" || code=$?
check "the follower stopped cleanly" "$code" "0"
check "so did the other commands" "$(cat "$work"/sync?.out | q 'sum(1 for x in rs if x["type"]=="error")')" "0"
check "alice uploaded new one-time keys" "$(proxy_log 'sum(1 for x in rs if x["path"].endswith("/keys/upload")) >= 1')" "True"
check "every upload was a 200 (no duplicate key)" "$(proxy_log 'sorted(set(x["status"] for x in rs if x["path"].endswith("/keys/upload")))')" "[200]"

step "the new keys work: carol writes to alice first"
control DELETE rules >/dev/null
login carol "$(register carol)"
ROOM="$(r carol room create --encrypted --invite "$alice_ID" | q 'rs[0]["room_id"]')"
r alice room join "$ROOM" >/dev/null
id="$(r carol send "$ROOM" "Hello world!" | sent_id)"
check "alice decrypts it" "$(text_of alice "$id")" "Hello world!"
