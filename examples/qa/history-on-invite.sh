#!/usr/bin/env bash
# History sharing on invite (MSC4268, spec v1.19; matrix-rust-sdk's
# shared_history.rs integration tests): alice's invite hands carol the keys
# of what was said before (alice's and bob's); carol's join takes them, and
# each line she reads says who shared it. `--no-history` shares nothing. At
# first contact in exclude-insecure mode matrix-sdk 0.18 drops the history
# (matrix-rust-sdk#5770): `room join` says so and names what alice runs to
# share it again, which is pasted here.
source "$(dirname "$0")/lib.sh"

alice_and_bob
login carol "$(register carol)"
login dave "$(register dave)"
login erin "$(register erin)"
r alice send "$ROOM" "alice, before the invites" >/dev/null
r bob send "$ROOM" "bob, before the invites" >/dev/null

step "carol knows alice's identity (she looked her up): the history goes with the invite"
r carol devices "$alice_ID" >/dev/null
check "alice's invite shares it" "$(r alice room invite "$ROOM" "$carol_ID" | q 'rs[0]["history"]')" "shared"
check "carol's join takes it" "$(r carol room join "$ROOM" | q 'rs[0]["history_shared_by"]')" "$alice_ID"
check "carol reads both" "$(bodies_of carol)" "['alice, before the invites', 'bob, before the invites']"
check "each marked: shared by alice" \
  "$( (r carol messages "$ROOM" || true) | q '[m["shared_by"] for m in rs if m["type"]=="message"]')" \
  "['$alice_ID', '$alice_ID']"

step "--no-history: dave reads nothing from before"
r dave devices "$alice_ID" >/dev/null
check "not shared" "$(r alice room invite "$ROOM" "$dave_ID" --no-history | q 'rs[0]["history_reason"]')" "opted_out"
r dave room join "$ROOM" >/dev/null
check "nothing decrypts" "$(bodies_of dave)" "[]"

step "first contact (exclude-insecure): dropped, said, and shared again by the command room join names"
r alice room invite "$ROOM" "$erin_ID" >/dev/null
err="$(r erin room join "$ROOM" 2>&1 >/dev/null)"
hint="$(echo "$err" | q '[l["message"] for l in rs if "5770" in l.get("message", "")][0].split("with: ")[1]')"
check "the hint is alice's command" "${hint%% *}" "ratchet"
# Pasted on alice's side (here her profile is named).
(export RATCHET_PROFILE=alice; eval "$RATCHET ${hint#ratchet }" >/dev/null)
r erin sync >/dev/null
check "erin reads the history now" "$(bodies_of erin)" "['alice, before the invites', 'bob, before the invites']"
