#!/usr/bin/env bash
# The room key's /sendToDevice is delivered, but every answer is lost
# (complement-crypto's TestClientRetriesSendToDevice): the fault proxy turns
# each /sendToDevice response into a 504 after the server has acted on it.
# ratchet retries, then fails the send with exit 1 and says nothing was sent
# (true: no room event went out), and discards the half-shared session;
# once the network is back, the same send, in a new session, reaches bob
# and he decrypts it, exactly once. QA_PEER=js puts bob on the
# js-sdk peer.
source "$(dirname "$0")/lib.sh"

start_proxy
ALICE_HS="$PROXY" alice_and_peer

step "every /sendToDevice answer to alice is a 504 (the server did deliver)"
fault alice '{"method": "PUT", "path": "/sendToDevice/", "phase": "response", "status": 504}' >/dev/null
code=0; out="$(r alice send "$ROOM" "Hello world!" 2>&1)" || code=$?
check "the send fails" "$code" "1"
check "and says so" "$(echo "$out" | q '[r["message"] for r in rs if r["type"]=="error"][0].startswith("message 1 failed, nothing was sent")')" "True"
check "ratchet retried the share" "$(proxy_log 'sum(1 for x in rs if "/sendToDevice/" in x["path"] and x["status"]==504) > 1')" "True"
check "no room event went out" "$(proxy_log 'sum(1 for x in rs if "/send/m.room.encrypted/" in x["path"])')" "0"

step "the network is back: the same send"
control DELETE rules >/dev/null
sent="$(r alice send "$ROOM" "Hello world!")"
id="$(echo "$sent" | sent_id)"
# As matrix-sdk does, a session whose share failed is discarded: some
# devices may lack its key, so no message may use it.
check "in a new session, as the one whose share failed was invalidated" "$(echo "$sent" | q 'rs[0]["rotation"]')" "invalidated"
check "bob decrypts it" "$(text_of bob "$id")" "Hello world!"
check "once" "$(proxy_log 'sum(1 for x in rs if "/send/m.room.encrypted/" in x["path"])')" "1"
