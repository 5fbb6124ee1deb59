#!/usr/bin/env bash
# History and membership (complement-crypto's
# TestCanDecryptMessagesAfterInviteButBeforeJoin,
# TestBobCanSeeButNotDecryptHistoryInPublicRoom and
# TestOnNewDeviceBobCanSeeButNotDecryptHistoryInPublicRoom): a message sent
# after bob was invited but before he joined decrypts for him; one sent
# before he was in the room at all is shown but not decrypted, and `doctor`
# says why; a new device of his sees the history but cannot decrypt it, and
# `doctor` tells that from a lost key (no `unwedge`); it decrypts what is
# sent after it logged in, and once logged out and in again (a new device),
# not what was sent in between.
source "$(dirname "$0")/lib.sh"

login alice "$(register alice)"
login bob "$(register bob)"
utds() { q '[u["event_id"] for u in rs if u["type"]=="utd"]'; }
bodies() { q '[m["body"] for m in rs if m["type"]=="message"]'; }

step "invited, not yet joined: alice's message reaches bob"
ROOM="$(r alice room create --encrypted --invite "$bob_ID" | q 'rs[0]["room_id"]')"
r alice send "$ROOM" "while bob is invited" >/dev/null
r bob room join "$ROOM" >/dev/null
check "bob decrypts it" "$( (r bob messages "$ROOM" || true) | bodies)" "['while bob is invited']"

step "before bob was in the room at all: seen, not decrypted"
login carol "$(register carol)"
PUBLIC="$(r alice room create --encrypted --alias "open-$RANDOM$RANDOM" | q 'rs[0]["room_id"]')"
api alice PUT "/_matrix/client/v3/rooms/$(enc "$PUBLIC")/state/m.room.join_rules/" '{"join_rule": "public"}' >/dev/null
early="$(r alice send "$PUBLIC" "before carol came" | q 'rs[0]["event_id"]')"
r carol room join "$PUBLIC" >/dev/null
r alice send "$PUBLIC" "after carol came" >/dev/null
code=0; out="$(r carol messages "$PUBLIC")" || code=$?
check "exit 3: one undecryptable" "$code" "3"
check "the early one is the one" "$(echo "$out" | utds)" "['$early']"
check "the later one decrypts" "$(echo "$out" | bodies)" "['after carol came']"
diag="$(r carol doctor "$PUBLIC" || true)"
# alice's session went on; carol was given it from the next index.
check "doctor: sent before the key reached carol" "$(echo "$diag" | q 'rs[0]["cause"]')" "index_before_first_known"
check "doctor offers no unwedge for it" "$(echo "$diag" | q '"unwedge" in " ".join(rs[0]["fix"])')" "False"

step "a new device of bob's sees the history, cannot decrypt it, and doctor says why"
bob_user="${bob_ID#@}"; bob_user="${bob_user%%:*}"
echo "pw-$bob_user" | r bob2 login --homeserver "$RATCHET_HOMESERVER" --user "$bob_user" --password-stdin >/dev/null 2>&1
code=0; out="$(r bob2 messages "$ROOM")" || code=$?
check "exit 3" "$code" "3"
check "nothing decrypts" "$(echo "$out" | bodies)" "[]"
diag="$(r bob2 doctor "$ROOM" || true)"
check "cause" "$(echo "$diag" | q 'rs[0]["cause"]')" "sent_before_this_device"
check "no unwedge" "$(echo "$diag" | q '"unwedge" in " ".join(rs[0]["fix"])')" "False"

step "what is sent after the new device logged in reaches it; what is sent after it logged out does not"
# all-devices: bob's new device is not cross-signed, as complement-crypto's clients' devices.
msg2="$(r alice --isolation all-devices send "$ROOM" "Bob's new device can decrypt this" | sent_id)"
check "the new device decrypts it" "$(text_of bob2 "$msg2")" "Bob's new device can decrypt this"
r bob2 logout --yes >/dev/null 2>&1
msg3="$(r alice --isolation all-devices send "$ROOM" "Bob's new device cannot decrypt this" | sent_id)"
check "bob's first device decrypts it" "$(text_of bob "$msg3")" "Bob's new device cannot decrypt this"
echo "pw-$bob_user" | r bob2 login --homeserver "$RATCHET_HOMESERVER" --user "$bob_user" --password-stdin >/dev/null 2>&1
check "logged in again (a new device), bob cannot decrypt it there" "$(text_of bob2 "$msg3")" "UTD"
check "doctor: sent before this device" "$( (r bob2 doctor "$ROOM" || true) | q '[d["cause"] for d in rs if d["type"]=="diagnosis" and "'"$msg3"'" in d["event_ids"]]')" "['sent_before_this_device']"
