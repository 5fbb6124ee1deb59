#!/usr/bin/env bash
# Emoji verification (SAS) between two profiles from one shell script.
#
# Off a terminal, `verify` prints the emoji as an `sas` record on stdout and
# reads its answer (`yes`, anything else is a mismatch) as one line of
# stdin. The script starts bob's side (waiting), then alice's, compares the
# two processes' emoji itself and answers both: the comparison a person
# makes between two screens.
source "$(dirname "$0")/lib.sh"

alice_and_bob
r alice sync >/dev/null
mkfifo "$work/alice.in" "$work/bob.in"
r bob verify --accept --from "$alice_ID" --wait 60 <"$work/bob.in" >"$work/bob.out" 2>"$work/bob.err" &
bob_pid=$!
exec 4>"$work/bob.in"
wait_for "$work/bob.err" "Waiting for a verification request"
r alice verify "$bob_ID" "$bob_DEVICE" --wait 60 <"$work/alice.in" >"$work/alice.out" 2>"$work/alice.err" &
alice_pid=$!
exec 3>"$work/alice.in"

step "compare the emoji of both processes"
wait_for "$work/alice.out" '"type":"sas"'
wait_for "$work/bob.out" '"type":"sas"'
emoji() { q '" ".join(e["symbol"] for e in [x for x in rs if x["type"]=="sas"][0]["emoji"])' <"$1"; }
check "the same seven emoji on both sides" "$(emoji "$work/alice.out")" "$(emoji "$work/bob.out")"
echo yes >&3
echo yes >&4
wait "$alice_pid"
wait "$bob_pid"
check "alice verified bob's device" "$(q '[x["device_id"] for x in rs if x["type"]=="verified"][0]' <"$work/alice.out")" "$bob_DEVICE"
check "bob's device is verified at alice" \
  "$(r alice devices "$bob_ID" | q '[d["verified"] for d in rs if d["device_id"]=="'"$bob_DEVICE"'"][0]')" "True"
check "alice's identity is verified at bob" "$(r bob identity "$alice_ID" | q 'rs[0]["verified"]')" "True"
