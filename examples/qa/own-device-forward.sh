#!/usr/bin/env bash
# A lost key forwarded by your own second, verified device (R13 as
# matrix-sdk allows it: it accepts forwarded keys only from your own
# verified devices, and only for a request it made itself).
source "$(dirname "$0")/lib.sh"

alice_and_bob
bob_user="${bob_ID#@}"; bob_user="${bob_user%%:*}"
second="$(echo "pw-$bob_user" | r bob2 login --homeserver "$RATCHET_HOMESERVER" --user "$bob_user" --password-stdin 2>/dev/null)"
second_device="$(echo "$second" | q 'rs[0]["device_id"]')"
step "bob verifies his second device"
verify_own bob2 bob "$second_device"
r bob2 sync >/dev/null
session="$(r alice send "$ROOM" "forward me" | q 'rs[0]["session_id"]')"
r bob messages "$ROOM" >/dev/null
r bob2 messages "$ROOM" >/dev/null
step "bob's second device loses the key, and asks"
r bob2 debug forget-room-key "$ROOM" "$session" --yes >/dev/null
r bob2 keys request "$ROOM" --session "$session" >/dev/null
r bob sync >/dev/null
check "the forward is accepted" \
  "$(r bob2 sync | q '[t.get("forward") for t in rs if t.get("event_type")=="m.forwarded_room_key"][0]')" "accepted"
check "decrypts again" "$(r bob2 messages "$ROOM" | q '[m["body"] for m in rs if m["type"]=="message"][-1]')" "forward me"
