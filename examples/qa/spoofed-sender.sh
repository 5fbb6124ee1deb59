#!/usr/bin/env bash
# A spoofed sender (complement-crypto's TestSpoofedEventSenderHandling): the
# fault proxy rewrites the `sender` of alice's encrypted events in bob's
# /sync and /messages to carol. The room key says alice's device made them.
# ratchet never shows the text under carol's name, in either isolation
# mode: the event is a `utd` with reason `mismatched_sender`, and `doctor`
# names the cause (`spoofed_sender`) and says no fix exists on bob's side.
# Carol, whose traffic is not rewritten, reads alice's message as alice's.
source "$(dirname "$0")/lib.sh"

start_proxy
BOB_HS="$PROXY" alice_and_bob
login carol "$(register carol)"
r alice room invite "$ROOM" "$carol_ID" >/dev/null
join carol "$ROOM"
first="$(r alice send "$ROOM" "Test Message" | sent_id)"
check "bob reads alice's first message" "$(text_of bob "$first")" "Test Message"

step "bob's /sync and /messages now say carol sent what alice sends"
fault bob '{"method": "GET", "path": "/sync|/messages", "spoof": {"from": "'"$alice_ID"'", "to": "'"$carol_ID"'"}}' >/dev/null
id="$(r alice send "$ROOM" "Another Test Message" | sent_id)"
check "carol reads it" "$(text_of carol "$id")" "Another Test Message"
for mode in exclude-insecure all-devices; do
  code=0; out="$(r bob --isolation "$mode" messages "$ROOM")" || code=$?
  check "$mode: exit 3" "$code" "3"
  check "$mode: no text is shown as carol's" "$(echo "$out" | q '[m["body"] for m in rs if m["type"]=="message" and m["sender"]=="'"$carol_ID"'"]')" "[]"
  check "$mode: it is undecryptable, mismatched_sender" "$(echo "$out" | q '[u["reason"] for u in rs if u["type"]=="utd" and u["event_id"]=="'"$id"'"]')" "['mismatched_sender']"
done
check "the human line says so" "$(RATCHET_DATA_DIR="$RATCHET_DATA_DIR" "$RATCHET" --profile bob messages "$ROOM" 2>/dev/null | grep -c 'unable to decrypt: mismatched_sender' || true)" "2"
diag="$(r bob doctor "$ROOM" || true)"
check "doctor: the cause" "$(echo "$diag" | q '[d["cause"] for d in rs if d["type"]=="diagnosis"]')" "['spoofed_sender']"
check "doctor: no fix to run" "$(echo "$diag" | q '[d["fix"] for d in rs if d["type"]=="diagnosis"]')" "[[]]"
check "doctor: it names who really made the key" "$(echo "$diag" | q '[("device '"$alice_DEVICE"' of '"$alice_ID"'" in d["explanation"]) for d in rs if d["type"]=="diagnosis"]')" "[True]"

step "the network tells the truth again"
control DELETE rules >/dev/null
check "bob reads alice's message as alice's" "$(r bob messages "$ROOM" | q '[(m["sender"], m["body"]) for m in rs if m["type"]=="message"][-1] == ("'"$alice_ID"'", "Another Test Message")')" "True"
