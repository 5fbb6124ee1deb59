#!/usr/bin/env bash
# The network fails after the server accepted a message (complement-crypto's
# "the network failed after the server accepted", mitmproxy dropping the
# answer). The fault proxy drops every answer to alice's message PUT, so
# ratchet's retries (same transaction id) all go unanswered: `send` says the
# message MAY have reached the server (not "nothing was sent"), exit 1, and
# with --txn-prefix names the rerun, which delivers it exactly once. Without
# --txn-prefix it says to look before sending again, and the command it
# names shows the message already there.
source "$(dirname "$0")/lib.sh"

start_proxy
ALICE_HS="$PROXY" alice_and_bob
drop='{"method": "PUT", "path": "/send/m.room.encrypted/", "phase": "response", "drop": true, "times": 5}'

step "every answer to the message's PUT is lost (with --txn-prefix)"
fault alice "$drop" >/dev/null
set +e
r alice send --txn-prefix lost "$ROOM" "sent once" 2>"$work/err1" >/dev/null
code=$?
set -e
check "exit 1" "$code" "1"
check "the error says it may have reached the server" \
  "$(q '[x["message"] for x in rs if x["type"]=="error"][0]' <"$work/err1" | grep -c 'may have reached the server')" "1"
check "a hint names the rerun" \
  "$(q 'sum("run the same command again (same --txn-prefix" in h for x in rs if x["type"]=="error" for h in x["hints"])' <"$work/err1")" "1"
count_in_room() { bodies_of bob | python3 -c 'import ast,sys; print(ast.literal_eval(sys.stdin.read()).count(sys.argv[1]))' "$1"; }
check "the server had it all the same: bob reads it" "$(count_in_room "sent once")" "1"
control DELETE rules >/dev/null

step "the same command again: the server answers with the event it has"
again="$(r alice send --txn-prefix lost "$ROOM" "sent once")"
id="$(sent_id <<<"$again")"
check "bob decrypts it" "$(text_of bob "$id")" "sent once"
check "still once in the room" "$(count_in_room "sent once")" "1"

step "without --txn-prefix: it says to look before sending again"
fault alice "$drop" >/dev/null
set +e
r alice send "$ROOM" "look first" 2>"$work/err2" >/dev/null
code=$?
set -e
check "exit 1" "$code" "1"
look="$(q '[h for x in rs if x["type"]=="error" for h in x["hints"] if "look" in h][0]' <"$work/err2")"
cmd="$(sed -n 's/.*`\(ratchet [^`]*\)`.*/\1/p' <<<"$look")"
check "it names \`ratchet messages\`" "$(grep -c '^ratchet .*messages' <<<"$cmd")" "1"
control DELETE rules >/dev/null
check "that command, pasted, shows the message there" "$(run_fix "$cmd" 2>/dev/null | grep -c 'look first')" "1"
