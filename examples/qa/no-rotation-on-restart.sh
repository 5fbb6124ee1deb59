#!/usr/bin/env bash
# No rotation on restart: one-shot CLIs often start a new Megolm session on
# every run (each message then costs a key share to every device). ratchet
# keeps the session in its encrypted store, so five separate `send`
# processes use one session at indexes 0..4.
source "$(dirname "$0")/lib.sh"

alice_and_bob
sent="$(for i in 1 2 3 4 5; do r alice send "$ROOM" "run $i"; done)"
check "one session" "$(echo "$sent" | q 'len({x["session_id"] for x in rs})')" "1"
check "indexes" "$(echo "$sent" | q '[x["message_index"] for x in rs]')" "[0, 1, 2, 3, 4]"
check "only the first was new" "$(echo "$sent" | q '[x["new_session"] for x in rs]')" "[True, False, False, False, False]"
