#!/usr/bin/env bash
# A verification violation: alice verified bob, then bob reset his identity
# (`recovery reset`, as when a recovery key is lost). alice sees the change,
# and her next message to him is refused until she looks (MSC4153's
# exclude-insecure mode does not send to a verified user whose identity
# changed).
source "$(dirname "$0")/lib.sh"

alice_and_bob
r alice sync >/dev/null
step "alice verifies bob (emoji confirmed by the script)"
r bob verify --accept --from "$alice_ID" --yes --wait 60 >"$work/bob.out" 2>"$work/bob.err" &
waiting=$!
wait_for "$work/bob.err" "Waiting for a verification request"
r alice verify "$bob_ID" "$bob_DEVICE" --yes --wait 60 >/dev/null 2>&1
wait "$waiting"
check "bob is verified at alice" "$(r alice identity "$bob_ID" | q 'rs[0]["verified"]')" "True"
step "bob resets his identity"
bob_user="${bob_ID#@}"; bob_user="${bob_user%%:*}"
echo "pw-$bob_user" | r bob recovery reset --yes --password-stdin >/dev/null
check "alice sees a verification violation" "$(r alice identity "$bob_ID" | q 'rs[0]["verification_violation"]')" "True"
code=0; r alice send "$ROOM" "to the changed identity" >/dev/null 2>"$work/send.err" || code=$?
check "alice's message is refused" "$code" "1"
check "and says why" "$(grep -q "identity of a user you verified changed" "$work/send.err" && echo yes)" "yes"
hints="$(tail -1 "$work/send.err" | python3 -c 'import json,re,sys; e=json.loads(sys.stdin.read()); print("\n".join(c for h in e["hints"] for c in re.findall(r"`([^`]*)`", h)))')"
withdraw="$(echo "$hints" | grep -- "--withdraw-verification")"
verify="$(echo "$hints" | grep -- " verify ")"
check "and names the way out, then how to verify again" "$(echo "$hints" | head -1 | grep -c -- "--withdraw-verification")" "1"
step "alice pastes the first hint in a terminal and confirms (Element's \"withdraw verification\")"
code=0; r alice identity "$bob_ID" --withdraw-verification >/dev/null 2>&1 || code=$?
check "off a terminal it needs --yes" "$code" "2"
run_fix_tty "$withdraw" y >"$work/withdraw.out"
accepted="$(r alice identity "$bob_ID")"
check "no violation any more" "$(echo "$accepted" | q 'rs[0]["verification_violation"]')" "False"
check "and not verified" "$(echo "$accepted" | q 'rs[0]["verified"]')" "False"
sent="$(r alice send "$ROOM" "to the accepted identity")"
check "alice's message goes out" "$(echo "$sent" | q 'rs[0]["type"]')" "sent"
# bob's reset left his old identity's signature on alice behind: to his new
# one, alice is a user he verified whose trust is gone (a violation too),
# so he does not decrypt her until he accepts her the same way.
code=0; r bob messages "$ROOM" >/dev/null 2>&1 || code=$?
check "bob's side: her message is refused too" "$code" "3"
r bob identity "$alice_ID" --withdraw-verification --yes >/dev/null
check "bob reads it" "$(r bob messages "$ROOM" | q '[m["body"] for m in rs if m["type"]=="message"][-1]')" "to the accepted identity"
step "alice pastes the second hint: verifying bob's new identity, with him"
r bob verify --accept --from "$alice_ID" --yes --wait 90 >"$work/bob2.out" 2>"$work/bob2.err" &
waiting=$!
wait_for "$work/bob2.err" "Waiting for a verification request"
echo yes | run_fix "$verify" >"$work/verify.out"
wait "$waiting"
check "bob's new identity is verified at alice" "$(r alice identity "$bob_ID" | q 'rs[0]["verified"]')" "True"
