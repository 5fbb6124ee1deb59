#!/usr/bin/env bash
# A wedged Olm session and its recovery (rules R9, R10, R11, R13).
#
# bob loses his Olm sessions with alice's device (`debug forget-olm`). The
# next room key alice sends him over Olm cannot be decrypted: doctor names
# the cause; bob's next sync replaces the session, sends m.dummy over the new
# one and asks for the lost key; alice's next messages decrypt again. The
# message sent over the broken session stays lost (see README: matrix-sdk
# accepts forwarded keys only from your own verified devices).
source "$(dirname "$0")/lib.sh"

alice_and_bob
r alice send "$ROOM" hello >/dev/null
r bob sync >/dev/null
step "wedge on purpose"
r bob debug forget-olm "$alice_ID" "$alice_DEVICE" --yes >/dev/null
r alice rotate "$ROOM" >/dev/null
r alice send "$ROOM" "lost in the wedge" >/dev/null
step "doctor says why and what to do"
diag="$(r bob doctor "$ROOM" || true)"
check "cause" "$(echo "$diag" | q 'rs[0]["cause"]')" "olm_session_missing"
# The fix is a command for bob's profile, ready to paste; it helps what is
# sent after it, not the lost message (said so).
check "fix" "$(echo "$diag" | q '[f.split(" --profile ")[1].split("   (")[0] for f in rs[0]["fix"] if " unwedge " in f][0]')" "bob unwedge $alice_ID $alice_DEVICE"
check "for later messages" "$(echo "$diag" | q '[("for later messages only" in f) for f in rs[0]["fix"] if " unwedge " in f][0]')" "True"
step "alice sends again; bob's sync recovers"
r alice rotate "$ROOM" >/dev/null
r alice send "$ROOM" "also over the wedge" >/dev/null
steps="$(r bob sync | q '[x["step"] for x in rs if x["type"]=="recovery"]')"
check "recovery steps" "$steps" "['olm_undecryptable', 'new_olm_session', 'dummy_sent', 'key_request']"
check "alice got the m.dummy" "$(r alice sync | q 'sum(1 for x in rs if x["type"]=="to_device" and x["event_type"]=="m.dummy")')" "1"
r alice send "$ROOM" "after recovery" >/dev/null
check "bob decrypts alice again" "$( (r bob messages "$ROOM" || true) | q '[m["body"] for m in rs if m["type"]=="message"][-1]')" "after recovery"
