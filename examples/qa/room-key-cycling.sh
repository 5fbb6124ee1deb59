#!/usr/bin/env bash
# When the room key must change, and when it must not (complement-crypto's
# TestRoomKeyIsCycledOnDeviceLogout, TestRoomKeyIsCycledOnMemberLeaving and
# TestRoomKeyIsNotCycled). complement-crypto sniffs /sendToDevice through
# mitmproxy; ratchet says it directly: each `sent` record names the Megolm
# session and why a new one began (`rotation`), and the receivers' reads
# prove who can decrypt what.
source "$(dirname "$0")/lib.sh"

# Alice in the legacy mode, so that her second device (not cross-signed)
# gets the room key too, as in complement-crypto's default clients.
login alice "$(register alice)"
login bob "$(register bob)"
ROOM="$(r alice room create --encrypted --invite "$bob_ID" | q 'rs[0]["room_id"]')"
r bob room join "$ROOM" >/dev/null
alice_user="${alice_ID#@}"; alice_user="${alice_user%%:*}"
second="$(echo "pw-$alice_user" | r alice2 --isolation all-devices login --homeserver "$RATCHET_HOMESERVER" --user "$alice_user" --password-stdin)"
alice2_DEVICE="$(echo "$second" | q 'rs[0]["device_id"]')"
r alice2 sync >/dev/null

send() { r alice --isolation all-devices send "$ROOM" "$1"; }
session() { q 'rs[0]["session_id"]'; }
last_body() { q '[m["body"] for m in rs if m["type"]=="message"][-1]'; }

step "the room works: bob and alice's second device read alice"
s1="$(send "first" | session)"
check "bob reads it" "$( (r bob messages "$ROOM" || true) | last_body)" "first"
check "alice2 reads it" "$( (r alice2 --isolation all-devices messages "$ROOM" || true) | last_body)" "first"

step "not cycled: bob changes his display name"
api bob PUT "/_matrix/client/v3/profile/$(enc "$bob_ID")/displayname" '{"displayname": "Little Bobby Tables"}' >/dev/null
r alice sync >/dev/null
sent="$(send "after the rename")"
check "same session" "$(echo "$sent" | session)" "$s1"
check "no rotation" "$(echo "$sent" | q 'rs[0]["new_session"]')" "False"

step "not cycled: bob logs in on a new device"
bob_user="${bob_ID#@}"; bob_user="${bob_user%%:*}"
bob2_DEVICE="$(echo "pw-$bob_user" | r bob2 login --homeserver "$RATCHET_HOMESERVER" --user "$bob_user" --password-stdin 2>/dev/null | q 'rs[0]["device_id"]')"
r alice sync >/dev/null
sent="$(send "after bob's new device")"
check "same session" "$(echo "$sent" | session)" "$s1"
index="$(echo "$sent" | q 'rs[0]["message_index"]')"
# The new device is given the session from the message it can first read:
# an extension of the share, not a new key for everyone.
check "bob's new device got it from this message's index on" \
  "$(r alice sessions "$ROOM" 2>/dev/null | q '[d["message_index"] for s in rs if s["type"]=="outbound_session" for d in s["shared_with"] if d["device_id"]=="'"$bob2_DEVICE"'"][0]')" "$index"

step "cycled: alice's second device logs out"
r alice2 logout --yes >/dev/null 2>&1
# (`sdk`: matrix-sdk rotated it itself, having seen the device go.)
r alice sync >/dev/null
sent="$(send "after alice2 left")"
s2="$(echo "$sent" | session)"
check "new session" "$([ "$s2" != "$s1" ] && echo yes)" "yes"
printf 'why: %s\n' "$(echo "$sent" | q 'rs[0]["rotation"]')" >&2
check "bob reads it" "$( (r bob messages "$ROOM" || true) | last_body)" "after alice2 left"
check "the logged-out device was not given it" \
  "$(r alice sessions "$ROOM" | q '"'"$alice2_DEVICE"'" in [d["device_id"] for s in rs if s["type"]=="outbound_session" and s["session_id"]=="'"$s2"'" for d in s["shared_with"]]')" "False"

step "cycled: a member leaves"
login carol "$(register carol)"
r alice room invite "$ROOM" "$carol_ID" >/dev/null
r carol room join "$ROOM" >/dev/null
r alice sync >/dev/null
s3="$(send "with carol" | session)"
check "carol reads it" "$( (r carol messages "$ROOM" || true) | last_body)" "with carol"
r carol room leave "$ROOM" >/dev/null
r alice sync >/dev/null
sent="$(send "after carol left")"
check "new session" "$([ "$(echo "$sent" | session)" != "$s3" ] && echo yes)" "yes"
# matrix-sdk discards the session when a member leaves; ratchet names that
# (`invalidated`), or names the leave itself when it sees it first.
check "because a member left" "$(echo "$sent" | q 'rs[0]["rotation"] in ("member_left", "invalidated")')" "True"
check "bob reads it" "$( (r bob messages "$ROOM" || true) | last_body)" "after carol left"
