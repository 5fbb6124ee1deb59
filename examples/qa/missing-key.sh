#!/usr/bin/env bash
# A missing Megolm key and how it comes back (rule R13).
#
# bob deletes one inbound session (`debug forget-room-key`): its messages
# become undecryptable (exit 3), doctor names the cause, a key request
# reaches alice, and importing an earlier key export restores them.
source "$(dirname "$0")/lib.sh"

alice_and_bob
session="$(r alice send "$ROOM" "keep me" | q 'rs[0]["session_id"]')"
r bob messages "$ROOM" >/dev/null
export RATCHET_KEYS_PASSPHRASE="qa passphrase"
r bob keys export "$work/keys.txt" >/dev/null
step "forget the key on purpose"
r bob debug forget-room-key "$ROOM" "$session" --yes >/dev/null
code=0; r bob messages "$ROOM" >/dev/null || code=$?
check "messages exit code" "$code" "3"
check "doctor's cause" "$( (r bob doctor "$ROOM" || true) | q 'rs[0]["cause"]')" "room_key_missing"
step "ask alice for it again"
r bob keys request "$ROOM" --session "$session" >/dev/null
check "alice receives the request" \
  "$(r alice sync | q 'sum(1 for x in rs if x["type"]=="to_device" and x["event_type"]=="m.room_key_request")')" "1"
step "import the export made before"
check "imported" "$(r bob keys import "$work/keys.txt" | q 'rs[0]["imported"] >= 1')" "True"
check "decrypts again" "$(r bob messages "$ROOM" | q '[m["body"] for m in rs if m["type"]=="message"]')" "['keep me']"
