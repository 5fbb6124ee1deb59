#!/usr/bin/env bash
# History from before a device existed, read through the key backup.
#
# alice sets up recovery and talks with bob. Later she logs in on a new
# device: it cannot read the earlier messages (their keys were never sent to
# it) until she gives it the recovery key, which verifies the device and
# brings the backup key; `backup restore` then imports the history's keys.
source "$(dirname "$0")/lib.sh"

alice_and_bob
key="$(r alice recovery enable | q 'rs[0]["recovery_key"]')"
r alice send "$ROOM" "said before the new device" >/dev/null
step "a new device of alice's"
alice_user="${alice_ID#@}"; alice_user="${alice_user%%:*}"
echo "pw-$alice_user" | r alice2 login --homeserver "$RATCHET_HOMESERVER" --user "$alice_user" --password-stdin >/dev/null 2>&1
code=0; r alice2 messages "$ROOM" >/dev/null || code=$?
check "the history is undecryptable there" "$code" "3"
step "the recovery key"
check "the new device is cross-signed" "$(echo "$key" | r alice2 recovery recover --key-stdin | q 'rs[0]["cross_signed"]')" "True"
check "keys restored" "$(r alice2 backup restore "$ROOM" | q 'rs[0]["imported"] >= 1')" "True"
check "the history reads" \
  "$(r alice2 messages "$ROOM" | q '[m["body"] for m in rs if m["type"]=="message"][-1]')" "said before the new device"
