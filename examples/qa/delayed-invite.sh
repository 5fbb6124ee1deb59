#!/usr/bin/env bash
# A delayed invite (complement-crypto's TestDelayedInviteResponse, which
# skips itself as known broken in both SDKs: rust-sdk#3622, js-sdk#4291).
# Alice chats in her room (`ratchet chat`, one long-running process); she
# invites bob from elsewhere, and the /sync response that would tell her
# chat about the invite is delayed 3 s by the fault proxy. The line she
# types meanwhile must reach bob. ratchet syncs before it shares a room key
# for typed lines (as `send` does); before it did, this message went out
# undecryptable for bob (`missing_megolm_session`). QA_PEER=js puts bob on
# the js-sdk peer, in all-devices mode: in exclude-insecure mode js-sdk
# 37.5.0 never decrypts a room key that arrived while bob was only invited
# (it did not track alice yet, so it fixed the key's sender as "unsigned
# device" and keeps that after it has alice's identity).
source "$(dirname "$0")/lib.sh"

start_proxy
login alice "$(register alice)" "$PROXY"
if [ "${QA_PEER:-}" = js ]; then start_js bob "$(register bob)" "" all-devices; else login bob "$(register bob)"; fi
ROOM="$(r alice room create --encrypted | q 'rs[0]["room_id"]')"
r alice send "$ROOM" "dummy, so that the member list is loaded" >/dev/null

step "alice chats; the /sync that brings bob's invite to her is delayed 3 s"
mkfifo "$work/chat.in"
r alice chat "$ROOM" <"$work/chat.in" >"$work/chat.out" 2>"$work/chat.err" &
chat=$!
exec 7>"$work/chat.in"
wait_for "$work/chat.err" "Chatting in"
fault alice '{"method": "GET", "path": "/sync", "contains": "\"membership\":\"invite\"", "delay_ms": 3000}' >/dev/null
api alice POST "/_matrix/client/v3/rooms/$(enc "$ROOM")/invite" '{"user_id": "'"$bob_ID"'"}' >/dev/null
echo "hello world!" >&7
wait_for "$work/chat.out" '"type":"sent"'
exec 7>&-
wait "$chat"
check "the invite's /sync was delayed" "$(control GET rules | q 'rs[0][0]["hits"] > 0')" "True"
id="$(sent_id <"$work/chat.out")"

step "bob joins"
join bob "$ROOM"
check "bob decrypts the line typed while the invite was on its way" "$(text_of bob "$id")" "hello world!"
