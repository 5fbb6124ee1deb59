#!/usr/bin/env bash
# A device-list change seen by one process, acted on by the other (the CLI
# analog of complement-crypto's
# TestMultiprocessInitialE2EESyncDoesntDropDeviceListUpdates,
# rust-sdk#3959). Bob keeps `ratchet chat` running in the room with alice;
# alice logs in a new device, and a one-shot `ratchet messages` of bob's, on
# the same profile, reads alice's next message: its sync may be the one that
# carries the news of alice's new device. Bob's chat then writes, and a
# chat started again afterwards writes too: alice's new device must be able
# to decrypt both.
source "$(dirname "$0")/lib.sh"

alice_and_bob
key="$(r alice recovery enable | q 'rs[0]["recovery_key"]')"
id="$(r bob send "$ROOM" "pre message" | sent_id)"
check "alice reads bob" "$(text_of alice "$id")" "pre message"

chat() {
  mkfifo "$work/chat$1.in"
  r bob chat "$ROOM" <"$work/chat$1.in" >"$work/chat$1.out" 2>"$work/chat$1.err" &
  chat_pid=$!
  exec 7>"$work/chat$1.in"
  wait_for "$work/chat$1.err" "Chatting in"
}

step "bob's chat runs"
chat 1

step "alice logs in a new device (cross-signed with her recovery key)"
alice_user="${alice_ID#@}"; alice_user="${alice_user%%:*}"
login alice2 "$alice_user" 2>/dev/null
echo "$key" | r alice2 recovery recover --key-stdin >/dev/null
id="$(r alice send "$ROOM" "pre message 2" | sent_id)"
check "bob's one-shot messages reads it" "$(text_of bob "$id")" "pre message 2"

step "bob's running chat writes"
echo "from the running chat" >&7
wait_for "$work/chat1.out" '"type":"sent"'
exec 7>&-
wait "$chat_pid"
id="$(sent_id <"$work/chat1.out")"
check "alice's new device decrypts it" "$(text_of alice2 "$id")" "from the running chat"

step "bob's chat starts again and writes"
chat 2
echo "can alice's new device decrypt this?" >&7
wait_for "$work/chat2.out" '"type":"sent"'
exec 7>&-
wait "$chat_pid"
id="$(sent_id <"$work/chat2.out")"
check "alice's new device decrypts it" "$(text_of alice2 "$id")" "can alice's new device decrypt this?"
