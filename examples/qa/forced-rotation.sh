#!/usr/bin/env bash
# Forced Megolm rotation: `ratchet rotate` (Element's /discardsession), and
# `rotate --share`, which hands receivers the new key before any message.
source "$(dirname "$0")/lib.sh"

alice_and_bob
before="$(r alice send "$ROOM" before | q 'rs[0]["session_id"]')"
step "rotate: the next message starts a new session, reason forced"
r alice rotate "$ROOM" >/dev/null
after="$(r alice send "$ROOM" after)"
check "new session" "$(echo "$after" | q 'rs[0]["session_id"] != "'"$before"'"')" "True"
check "reason" "$(echo "$after" | q 'rs[0]["rotation"]')" "forced"

step "rotate --share: bob holds the new session before it is used"
new="$(r alice rotate "$ROOM" --share | q 'rs[0]["new_session_id"]')"
check "bob holds it" "$(r bob sessions "$ROOM" | q '"'"$new"'" in [s["session_id"] for s in rs if s["type"]=="inbound_session"]')" "True"
check "next message uses it" "$(r alice send "$ROOM" shared | q 'rs[0]["session_id"]')" "$new"
