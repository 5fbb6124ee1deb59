#!/usr/bin/env bash
# Megolm rotation by age (rule R5), to the millisecond.
#
# The room says rotation_period_ms = 2000. matrix-sdk on its own would keep
# the session for at least an hour; ratchet starts a new one as soon as the
# session is two seconds old.
source "$(dirname "$0")/lib.sh"

alice_and_bob --rotation-ms 2000
step "two messages at once share a session"
first="$(r alice send "$ROOM" one two)"
check "same session" "$(echo "$first" | q 'rs[0]["session_id"] == rs[1]["session_id"]')" "True"
step "2.1 s later the next message is in a new session"
sleep 2.1
late="$(r alice send "$ROOM" three)"
check "reason" "$(echo "$late" | q 'rs[0]["rotation"]')" "age_limit"
check "index" "$(echo "$late" | q 'rs[0]["message_index"]')" "0"
check "bob decrypts all" "$(r bob messages "$ROOM" | q 'sum(1 for m in rs if m["type"]=="message")')" "3"
