#!/usr/bin/env bash
# The key endpoints fail for a while, then heal (complement-crypto's
# TestFailedDeviceKeyDownloadRetries, TestToDeviceMessagesArentLostWhenKeysQueryFails,
# TestFailedKeysClaimRetries and TestFailedOneTimeKeyUploadRetries). The
# fault proxy answers 504 to the first N requests; ratchet retries each
# request three times (after 0.5, 1 and 2 s), so no command fails, no room
# key is dropped, and every message decrypts. Before ratchet retried more
# than once, the /keys/claim and /keys/upload cases failed the command.
# QA_PEER=js puts bob on the js-sdk peer.
source "$(dirname "$0")/lib.sh"

start_proxy
count() { proxy_log "sum(1 for x in rs if x['path'].endswith('$1') and x['status']==$2)"; }

step "/keys/query answers 504 four times while the room is made and used"
fault - '{"method": "POST", "path": "/keys/query$", "status": 504, "times": 4}' >/dev/null
ALICE_HS="$PROXY" BOB_HS="$PROXY" alice_and_peer
id="$(r alice send "$ROOM" "checking whether we can send a message" | sent_id)"
check "bob decrypts it" "$(text_of bob "$id")" "checking whether we can send a message"
check "four 504s were answered" "$(count /keys/query 504)" "4"
check "and /keys/query went through after them" "$(count /keys/query 200 | python3 -c 'print(int(input()) > 0)')" "True"

step "/keys/query answers 504 three times while alice's new device logs in and sends"
# Cross-signed with alice's recovery key, as Element's second device would be.
key="$(r alice recovery enable | q 'rs[0]["recovery_key"]')"
control DELETE rules >/dev/null; control DELETE log >/dev/null
fault - '{"method": "POST", "path": "/keys/query$", "status": 504, "times": 3}' >/dev/null
alice_user="${alice_ID#@}"; alice_user="${alice_user%%:*}"
login alice2 "$alice_user" "$PROXY" 2>/dev/null
echo "$key" | r alice2 recovery recover --key-stdin >/dev/null
id="$(r alice2 send "$ROOM" "new device message from alice" | sent_id)"
check "bob decrypts the new device's message" "$(text_of bob "$id")" "new device message from alice"
check "three 504s were answered" "$(count /keys/query 504)" "3"

step "/keys/claim answers 504 twice when carol first writes to the room"
control DELETE rules >/dev/null; control DELETE log >/dev/null
login carol "$(register carol)" "$PROXY"
r alice room invite "$ROOM" "$carol_ID" >/dev/null
join carol "$ROOM"
# Counted from carol's write only (alice's invite claimed a key of carol's
# to share the room's history with her: MSC4268).
control DELETE log >/dev/null
fault - '{"method": "POST", "path": "/keys/claim$", "status": 504, "times": 2}' >/dev/null
id="$(r carol send "$ROOM" "poke msg" | sent_id)"
check "two 504s, then a claim that worked" "$(count /keys/claim 504) $(count /keys/claim 200)" "2 1"
check "alice decrypts carol's message" "$(text_of alice "$id")" "poke msg"
check "bob decrypts it" "$(text_of bob "$id")" "poke msg"

step "/keys/upload answers 504 twice while dave logs in"
control DELETE rules >/dev/null; control DELETE log >/dev/null
fault - '{"method": "POST", "path": "/keys/upload$", "status": 504, "times": 2}' >/dev/null
login dave "$(register dave)" "$PROXY"
check "two 504s, then the upload" "$(count /keys/upload 504) $(count /keys/upload 200 | python3 -c 'print(int(input()) > 0)')" "2 True"
claim='{"one_time_keys": {"'"$dave_ID"'": {"'"$dave_DEVICE"'": "signed_curve25519"}}}'
check "anyone can claim a one-time key of dave's" "$(api alice POST /_matrix/client/v3/keys/claim "$claim" | q 'any(k.startswith("signed_curve25519:") and not v.get("fallback") for k, v in rs[0]["one_time_keys"]["'"$dave_ID"'"]["'"$dave_DEVICE"'"].items())')" "True"
