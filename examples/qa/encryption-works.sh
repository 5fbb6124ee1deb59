#!/usr/bin/env bash
# The baseline (complement-crypto's TestAliceBobEncryptionWorks): alice
# makes an encrypted room and invites bob, bob joins; both see the room as
# encrypted, and each reads what the other writes. QA_PEER=js puts bob on
# the js-sdk peer (Element's crypto), in Element's default exclude-insecure
# mode, with ratchet in it too.
source "$(dirname "$0")/lib.sh"

alice_and_peer
check "the room is encrypted for alice" "$(r alice room list | q '[x["encrypted"] for x in rs if x["room_id"]=="'"$ROOM"'"]')" "[True]"
if is_js bob; then
  id="$(js bob '{"cmd": "send", "room_id": "'"$ROOM"'", "text": "Hello from bob"}' | q 'rs[0]["event_id"]')"
  check "bob's message is encrypted on the wire" "$(r alice messages "$ROOM" | q '[m["encrypted"] for m in rs if m.get("event_id")=="'"$id"'"]')" "[True]"
else
  check "the room is encrypted for bob" "$(r bob room list | q '[x["encrypted"] for x in rs if x["room_id"]=="'"$ROOM"'"]')" "[True]"
  id="$(r bob send "$ROOM" "Hello from bob" | sent_id)"
fi
check "alice reads bob" "$(text_of alice "$id")" "Hello from bob"
id="$(r alice send "$ROOM" "Hello world" | sent_id)"
check "bob reads alice" "$(text_of bob "$id")" "Hello world"
