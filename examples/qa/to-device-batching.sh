#!/usr/bin/env bash
# To-device batching (complement-crypto's TestToDeviceMessagesAreBatched,
# element-web#24680): alice's first message in a room of 100 other users
# shares its room key with all of them in one /sendToDevice request, not
# one request per user. The 100 are devices with real keys and no client
# (examples/qa/devices.py); alice sends in all-devices mode, as complement-
# crypto's clients do, since their devices are not cross-signed. The fault
# proxy watches her requests (the log counts the users each addresses).
source "$(dirname "$0")/lib.sh"

start_proxy
login alice "$(register alice)" "$PROXY"
ROOM="$(r alice room create --encrypted --rotation-msgs 1 | q 'rs[0]["room_id"]')"
api alice PUT "/_matrix/client/v3/rooms/$(enc "$ROOM")/state/m.room.join_rules/" '{"join_rule": "public"}' >/dev/null
step "100 users join"
check "100 joined" "$(crowd "$ROOM" 100 | wc -l | tr -d ' ')" "100"

step "alice's first message"
r alice --isolation all-devices send "$ROOM" "one key for a hundred" >/dev/null
check "one encrypted /sendToDevice request" "$(proxy_log 'sum(1 for x in rs if "/sendToDevice/m.room.encrypted/" in x["path"])')" "1"
check "addressed to all 100 users" "$(proxy_log '[x["users"] for x in rs if "/sendToDevice/m.room.encrypted/" in x["path"]]')" "[100]"
