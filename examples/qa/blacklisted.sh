#!/usr/bin/env bash
# m.blacklisted on purpose: alice blocks bob's device (local trust), so her
# room keys go to it as m.room_key.withheld with code m.blacklisted; doctor
# names who must unblock it; unset again, her next session reaches bob.
# (In exclude-insecure mode matrix-sdk withholds by cross-signing alone, so
# alice uses the legacy all-devices mode here.)
source "$(dirname "$0")/lib.sh"

alice_and_bob
step "alice blocks bob's device"
r alice --isolation all-devices trust "$bob_ID" "$bob_DEVICE" blacklisted >/dev/null
r alice --isolation all-devices send "$ROOM" "not for a blocked device" >/dev/null
code=0; out="$(r bob messages "$ROOM")" || code=$?
check "bob cannot read it" "$code" "3"
check "withheld code" "$(echo "$out" | q '[u["withheld_code"] for u in rs if u["type"]=="utd"][-1]')" "m.blacklisted"
check "doctor's cause" "$( (r bob doctor "$ROOM" || true) | q 'rs[-1]["cause"]')" "key_withheld"
step "unblock, new session"
r alice --isolation all-devices trust "$bob_ID" "$bob_DEVICE" unset >/dev/null
r alice rotate "$ROOM" >/dev/null
r alice --isolation all-devices send "$ROOM" "for bob again" >/dev/null
check "decrypts" "$( (r bob messages "$ROOM" || true) | q '[m["body"] for m in rs if m["type"]=="message"][-1]')" "for bob again"
