#!/usr/bin/env bash
# One-time keys run out (complement-crypto's
# TestFallbackKeyIsUsedIfOneTimeKeysRunOut): every one-time key of bob's
# device is claimed from the server (here with plain HTTP, as anyone may),
# so the next Olm session made with it uses its fallback key. Alice's first
# message still reaches bob; with no fallback key it would be withheld as
# `m.no_olm`.
source "$(dirname "$0")/lib.sh"

alice_and_bob
token() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$RATCHET_DATA_DIR/$1/session.json"; }

step "claim every one-time key of bob's device"
fallback="$(python3 - "$RATCHET_HOMESERVER" "$(token alice)" "$bob_ID" "$bob_DEVICE" <<'PY'
import json, sys, urllib.request
hs, token, user, device = sys.argv[1:]
def claim():
    body = json.dumps({"one_time_keys": {user: {device: "signed_curve25519"}}}).encode()
    req = urllib.request.Request(f"{hs}/_matrix/client/v3/keys/claim", body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    keys = json.load(urllib.request.urlopen(req))["one_time_keys"].get(user, {}).get(device, {})
    return next(iter(keys.values()), None)
for n in range(200):
    key = claim()
    if key is None or key.get("fallback"):
        break
print(json.dumps({"claimed": n, "fallback": bool(key and key.get("fallback"))}))
PY
)"
printf 'claimed: %s\n' "$fallback" >&2
check "only the fallback key is left" "$(echo "$fallback" | q 'rs[0]["fallback"]')" "True"

step "alice's first message: a new Olm session over the fallback key"
r alice send "$ROOM" "over the fallback key" >/dev/null
check "bob decrypts it" "$( (r bob messages "$ROOM" || true) | q '[m["body"] for m in rs if m["type"]=="message"]')" "['over the fallback key']"
