#!/usr/bin/env bash
# Megolm rotation by message count (rules R4, R5).
#
# The room says rotation_period_msgs = 3: every outbound Megolm session
# encrypts exactly three messages (indexes 0, 1, 2), then a new one starts —
# within one process and across separate processes alike. The receiver sees
# the same sessions and indexes.
source "$(dirname "$0")/lib.sh"

alice_and_bob --rotation-msgs 3
step "alice sends 4 messages in one process, then 3 more in 3 processes"
sent="$(r alice send "$ROOM" m1 m2 m3 m4; for m in m5 m6 m7; do r alice send "$ROOM" "$m"; done)"
check "indexes" "$(echo "$sent" | q '[x["message_index"] for x in rs]')" "[0, 1, 2, 0, 1, 2, 0]"
check "reasons" "$(echo "$sent" | q '[x["rotation"] for x in rs]')" \
  "['new', None, None, 'message_limit', None, None, 'message_limit']"
check "sessions" "$(echo "$sent" | q 'len({x["session_id"] for x in rs})')" "3"

step "bob decrypts all seven and sees the same session and index for each"
got="$(r bob messages "$ROOM")"
check "bob's view" "$(echo "$got" | q '[(m["session_id"], m["message_index"]) for m in rs if m["type"]=="message"]')" \
  "$(echo "$sent" | q '[(x["session_id"], x["message_index"]) for x in rs]')"
