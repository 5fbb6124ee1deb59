#!/usr/bin/env bash
# A wrong recovery key (complement-crypto's TestBackupWrongRecoveryKeyFails;
# its TestCanBackupKeys is backup-restore.sh and history-via-backup.sh).
# Alice's keys are in the backup; her new device is given a recovery key
# that is well-formed but someone else's. ratchet refuses it, imports
# nothing (exit 4, as for a wrong password), and the history stays undecryptable there; `doctor` names the
# recovery key as the fix, and with the right key the history reads.
source "$(dirname "$0")/lib.sh"

alice_and_bob
key="$(r alice recovery enable | q 'rs[0]["recovery_key"]')"
id="$(r alice send "$ROOM" "An encrypted message" | sent_id)"
r alice sync >/dev/null
login mallory "$(register mallory)"
wrong="$(r mallory recovery enable | q 'rs[0]["recovery_key"]')"

step "alice's new device, with mallory's recovery key"
alice_user="${alice_ID#@}"; alice_user="${alice_user%%:*}"
echo "pw-$alice_user" | r alice2 login --homeserver "$RATCHET_HOMESERVER" --user "$alice_user" --password-stdin >/dev/null 2>&1
code=0; out="$(echo "$wrong" | r alice2 recovery recover --key-stdin 2>&1)" || code=$?
check "refused, exit 4 (a wrong secret, as a wrong password)" "$code" "4"
check "it says so, and changes nothing" "$(echo "$out" | q '[e["message"] for e in rs if e["type"]=="error"][0]')" "the recovery key is wrong; nothing was changed"
check "nothing restored: still undecryptable" "$(text_of alice2 "$id")" "UTD"
check "doctor: its fix is the recovery key" "$( (r alice2 doctor "$ROOM" || true) | q 'any("recovery recover" in f for d in rs if d["type"]=="diagnosis" for f in d["fix"])')" "True"

step "with alice's own recovery key"
echo "$key" | r alice2 recovery recover --key-stdin >/dev/null
r alice2 backup restore "$ROOM" >/dev/null
check "the history reads" "$(text_of alice2 "$id")" "An encrypted message"
