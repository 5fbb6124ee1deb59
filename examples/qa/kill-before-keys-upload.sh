#!/usr/bin/env bash
# SIGKILL before the /keys/upload response (complement-crypto's
# TestSigkillBeforeKeysUploadResponse, rust-sdk#1415). The fault proxy holds
# the answer to alice's first /keys/upload; the server has stored her keys,
# but `ratchet login` is killed before it hears so. The next `login`
# resumes the same device and uploads again: every upload must be a 200 (a
# different key under an id the server already has would be a 400), and the
# device must work: bob's first message reaches it over a one-time key.
# QA_PEER=js puts bob on the js-sdk peer (Element's crypto).
source "$(dirname "$0")/lib.sh"

start_proxy
user="$(register alice)"
fault - '{"method": "POST", "path": "/keys/upload$", "phase": "response", "hold": true, "times": 1}' >/dev/null

step "alice logs in; the first /keys/upload answer is held, and ratchet is killed"
"$RATCHET" --profile alice --json login --homeserver "$PROXY" --user "$user" --password-stdin \
  <<<"pw-$user" >"$work/login1.out" 2>&1 &
pid=$!
wait_held 1
check "an upload is held" "$(held)" "1"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
control POST release >/dev/null
check "the server stored it (the client never heard)" "$(proxy_log '[x["status"] for x in rs if x["path"].endswith("/keys/upload")]')" "[200]"

step "login again: the same device, its keys uploaded again"
first="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["device_id"])' "$RATCHET_DATA_DIR/alice/session.json")"
login alice "$user" "$PROXY"
check "the same device as the killed login's" "$alice_DEVICE" "$first"
check "every /keys/upload was a 200" "$(proxy_log 'sorted(set(x["status"] for x in rs if x["path"].endswith("/keys/upload")))')" "[200]"
check "there was a second one" "$(proxy_log 'sum(1 for x in rs if x["path"].endswith("/keys/upload")) > 1')" "True"
check "one device on the account" "$(api alice GET /_matrix/client/v3/devices | q 'len(rs[0]["devices"])')" "1"

step "the device works: bob writes to it first"
login_peer bob "$(register bob)"
ROOM="$(r alice room create --encrypted --invite "$bob_ID" | q 'rs[0]["room_id"]')"
join bob "$ROOM"
id="$(say bob "after the kill")"
check "alice decrypts it" "$(text_of alice "$id")" "after the kill"
