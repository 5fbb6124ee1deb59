#!/usr/bin/env bash
# One-time keys run out (complement-crypto's
# TestFallbackKeyIsUsedIfOneTimeKeysRunOut): every one-time key of bob's
# device is claimed from the server (here with plain HTTP, as anyone may),
# so the next Olm session made with it uses its fallback key. Alice's first
# message still reaches bob; with no fallback key it would be withheld as
# `m.no_olm`. As in complement-crypto, bob's /keys/upload is blocked (the
# fault proxy answers 504) while his keys are eaten, so he cannot top them
# up. QA_PEER=js puts bob on the js-sdk peer (Element's crypto), whose
# fallback key then carries the message.
source "$(dirname "$0")/lib.sh"

start_proxy
BOB_HS="$PROXY" alice_and_peer
fault - '{"method": "POST", "path": "/keys/upload$", "status": 504}' >/dev/null
step "claim every one-time key of bob's device"
claim='{"one_time_keys": {"'"$bob_ID"'": {"'"$bob_DEVICE"'": "signed_curve25519"}}}'
claimed=0
while [ "$(api alice POST /_matrix/client/v3/keys/claim "$claim" | q 'list(rs[0]["one_time_keys"]["'"$bob_ID"'"]["'"$bob_DEVICE"'"].values())[0].get("fallback", False)')" = "False" ]; do
  claimed=$((claimed + 1))
  [ "$claimed" -lt 200 ] || { echo "FAIL: no fallback key after 200 claims" >&2; exit 1; }
done
printf 'claimed %s one-time keys before the fallback key\n' "$claimed" >&2
check "only the fallback key is left" "$(api alice POST /_matrix/client/v3/keys/claim "$claim" | q 'list(rs[0]["one_time_keys"]["'"$bob_ID"'"]["'"$bob_DEVICE"'"].values())[0].get("fallback", False)')" "True"

step "alice's first message: a new Olm session over the fallback key"
id="$(r alice send "$ROOM" "over the fallback key" | sent_id)"
check "bob decrypts it" "$(text_of bob "$id")" "over the fallback key"
