#!/usr/bin/env bash
# A new device after the invite (complement-crypto's
# TestChangingDeviceAfterInviteReEncrypts, marked there "EXPECTED FAIL in
# today's Matrix" and asserting the failure). Alice invites bob to a public
# room and writes while he is invited; bob then joins from a device he logs
# in only now. No one re-encrypts for a new device, so the message stays
# undecryptable there, as complement-crypto asserts. `doctor` says why
# (`sent_before_this_device`), and its fix works: bob verifies the new
# device from his first one, which got the key while invited. Once
# verified, the new device's next retry of the event (ratchet retries kept
# undecryptable events when to-device events come, issue 28) makes
# matrix-sdk request the key from bob's devices, and the first one answers:
# no `keys request` by hand is needed any more.
source "$(dirname "$0")/lib.sh"

login alice "$(register alice)"
login bob "$(register bob)"
ROOM="$(r alice room create --encrypted --invite "$bob_ID" | q 'rs[0]["room_id"]')"
api alice PUT "/_matrix/client/v3/rooms/$(enc "$ROOM")/state/m.room.join_rules/" '{"join_rule": "public"}' >/dev/null
r bob sync >/dev/null
id="$(r alice send "$ROOM" "Alice should re-encrypt this message for bob's new device" | sent_id)"

step "bob joins from a new device"
bob_user="${bob_ID#@}"; bob_user="${bob_user%%:*}"
bob2_DEVICE="$(echo "pw-$bob_user" | r bob2 login --homeserver "$RATCHET_HOMESERVER" --user "$bob_user" --password-stdin 2>/dev/null | q 'rs[0]["device_id"]')"
r bob2 room join "$ROOM" >/dev/null
check "the new device cannot decrypt it (complement-crypto's expected failure)" "$(text_of bob2 "$id")" "UTD"
check "doctor: sent before this device" "$( (r bob2 doctor "$ROOM" || true) | q '[d["cause"] for d in rs if d["type"]=="diagnosis"]')" "['sent_before_this_device']"
check "bob's first device, invited at the time, reads it" "$(text_of bob "$id")" "Alice should re-encrypt this message for bob's new device"

step "doctor's fix: verify the new device; its key request is answered by bob's first device"
verify_own bob2 bob "$bob2_DEVICE"
{ r bob2 sync; r bob sync >/dev/null; r bob2 sync; } >"$work/bob2.sync"
check "the new device decrypts it now" "$(text_of bob2 "$id")" "Alice should re-encrypt this message for bob's new device"
check "its sync delivers it decrypted (the utd kept undelivered became the message)" "$(q '[(m["type"], m.get("body")) for m in rs if m.get("event_id")=="'"$id"'"]' <"$work/bob2.sync")" "[('message', \"Alice should re-encrypt this message for bob's new device\")]"
