#!/usr/bin/env bash
# Two processes on one profile, taking turns (the CLI analog of
# complement-crypto's TestMultiprocessNSEOlmSessionWedge, where iOS's
# notification process and the app share one store). Alice keeps `ratchet
# chat` running and also runs one-shot commands on the same profile; in a
# room that rotates after every message, each message travels with a new
# room key over Olm, so each process must use the Olm state the other left.
# Four rounds of: bob writes (alice's chat decrypts it), alice's one-shot
# `send` writes, bob writes (alice's one-shot `messages` decrypts it),
# alice's chat writes. Every message must decrypt on the other side, and no
# Olm session may need recovery (no `recovery` record, no m.dummy).
source "$(dirname "$0")/lib.sh"

alice_and_bob --rotation-msgs 1
mkfifo "$work/chat.in"
r alice chat "$ROOM" <"$work/chat.in" >"$work/chat.out" 2>"$work/chat.err" &
chat=$!
exec 7>"$work/chat.in"
wait_for "$work/chat.err" "Chatting in"

for i in 1 2 3 4; do
  step "round $i"
  r bob send "$ROOM" "bob to the chat $i" >/dev/null
  wait_for "$work/chat.out" "\"body\":\"bob to the chat $i\""
  id="$(r alice send "$ROOM" "alice one-shot $i" | sent_id)"
  check "bob decrypts alice's one-shot send" "$(text_of bob "$id")" "alice one-shot $i"
  id="$(r bob send "$ROOM" "bob to the one-shot $i" | sent_id)"
  check "alice's one-shot messages decrypts bob" "$(text_of alice "$id")" "bob to the one-shot $i"
  echo "alice chat $i" >&7
  wait_for "$work/chat.out" "\"type\":\"sent\".*\"seq\":$i,"
  id="$(grep '"type":"sent"' "$work/chat.out" | tail -n 1 | sent_id)"
  check "bob decrypts alice's chat line" "$(text_of bob "$id")" "alice chat $i"
done
exec 7>&-
wait "$chat"
check "alice's chat decrypted every message it showed" "$(q 'sum(1 for x in rs if x["type"]=="utd")' <"$work/chat.out")" "0"
check "no Olm session needed recovery" "$(cat "$work/chat.out" | q 'sum(1 for x in rs if x["type"]=="recovery")')" "0"
check "bob got no m.dummy (no unwedging)" "$(r bob sync | q 'sum(1 for x in rs if x["type"]=="recovery" or x.get("event_type")=="m.dummy")')" "0"
check "alice got no m.dummy" "$(r alice sync | q 'sum(1 for x in rs if x["type"]=="recovery" or x.get("event_type")=="m.dummy")')" "0"
