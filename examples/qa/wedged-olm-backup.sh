#!/usr/bin/env bash
# A wedged Olm session whose lost room key comes back from the backup.
#
# bob has two devices with recovery set up. The Olm session between alice
# and bob's second device breaks (`debug forget-olm`), so alice's next room
# key never reaches that device. His first device got it and backed it up;
# the second finds it in the backup when it reads the room.
source "$(dirname "$0")/lib.sh"

alice_and_bob
key="$(r bob recovery enable | q 'rs[0]["recovery_key"]')"
bob_user="${bob_ID#@}"; bob_user="${bob_user%%:*}"
echo "pw-$bob_user" | r bob2 login --homeserver "$RATCHET_HOMESERVER" --user "$bob_user" --password-stdin >/dev/null 2>&1
echo "$key" | r bob2 recovery recover --key-stdin >/dev/null
r alice send "$ROOM" "before the wedge" >/dev/null
r bob2 messages "$ROOM" >/dev/null
step "wedge bob2's Olm session with alice"
r bob2 debug forget-olm "$alice_ID" "$alice_DEVICE" --yes >/dev/null
r alice rotate "$ROOM" >/dev/null
r alice send "$ROOM" "over the wedge" >/dev/null
step "bob's first device receives the key and backs it up"
r bob messages "$ROOM" >/dev/null
check "bob2 decrypts it, with the key from the backup" \
  "$(r bob2 --isolation exclude-insecure messages "$ROOM" | q '[(m["body"], m["key_from_backup"]) for m in rs if m["type"]=="message"][-1]')" \
  "('over the wedge', True)"
