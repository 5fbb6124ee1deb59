#!/usr/bin/env bash
# A lost Megolm key restored from the key backup (issue 13).
#
# bob sets up recovery (a recovery key and a backup); every key he receives
# is uploaded before the command that got it exits. He deletes one on
# purpose (`debug forget-room-key`); `messages` looks it up in the backup,
# decrypts, and says the key came from there.
source "$(dirname "$0")/lib.sh"

alice_and_bob
step "bob sets up recovery and a backup"
check "a recovery key is printed once" "$(r bob recovery enable | q 'len(rs[0]["recovery_key"].split())')" "12"
session="$(r alice send "$ROOM" "worth keeping" | q 'rs[0]["session_id"]')"
r bob messages "$ROOM" >/dev/null
check "nothing pending for the backup" "$(r bob backup status | q 'rs[0]["pending"]')" "0"
step "lose the key on purpose"
r bob debug forget-room-key "$ROOM" "$session" --yes >/dev/null
check "decrypts again, from the backup" \
  "$(r bob messages "$ROOM" | q '[(m["body"], m["key_from_backup"]) for m in rs if m["type"]=="message"][-1]')" \
  "('worth keeping', True)"
