#!/usr/bin/env bash
# A room key withheld as m.unverified from an insecure device (MSC4153),
# fixed by verifying the device.
#
# alice logs in twice. Her first device creates her cross-signing identity;
# the second is not signed by it, so bob (in exclude-insecure mode, Element's
# default) withholds his room key from it with m.unverified. doctor says so
# and names the fix; after `verify --self` the second device is cross-signed
# and bob's next message reaches it.
source "$(dirname "$0")/lib.sh"

alice_and_bob
alice_user="${alice_ID#@}"; alice_user="${alice_user%%:*}"
step "a second device of alice's, not verified"
second="$(echo "pw-$alice_user" | r alice2 login --homeserver "$RATCHET_HOMESERVER" --user "$alice_user" --password-stdin 2>/dev/null)"
check "login says the identity existed" "$(echo "$second" | q 'rs[0]["cross_signing"]')" "existing"
second_device="$(echo "$second" | q 'rs[0]["device_id"]')"
r bob room invite "$ROOM" "$alice_ID" >/dev/null 2>&1 || true
r alice2 room join "$ROOM" >/dev/null
r bob sync >/dev/null
r bob send "$ROOM" "bob to every secure device" >/dev/null
code=0; out="$(r alice2 messages "$ROOM")" || code=$?
check "the second device cannot read it" "$code" "3"
check "withheld code" "$(echo "$out" | q '[u["withheld_code"] for u in rs if u["type"]=="utd"][-1]')" "m.unverified"
check "doctor's cause" "$( (r alice2 doctor "$ROOM" || true) | q 'rs[-1]["cause"]')" "key_withheld"

step "verify it from the first device (emoji confirmed with --yes: a script, not a person)"
r alice2 verify --accept --from "$alice_ID" --yes --wait 60 >"$work/accept.out" 2>"$work/accept.err" &
waiting=$!
wait_for "$work/accept.err" "Waiting for a verification request"
check "the first device signs the second" \
  "$(r alice verify --self "$second_device" --yes --wait 60 2>/dev/null | q '[x["other_cross_signed"] for x in rs if x["type"]=="verified"][0]')" "True"
wait "$waiting"
check "the second device is cross-signed" "$(r alice2 identity | q 'rs[0]["this_device_cross_signed"]')" "True"

step "bob's next message reaches it"
r bob rotate "$ROOM" >/dev/null
r bob send "$ROOM" "now for both of alice's devices" >/dev/null
check "decrypts" "$( (r alice2 messages "$ROOM" || true) | q '[m["body"] for m in rs if m["type"]=="message"][-1]')" "now for both of alice's devices"
