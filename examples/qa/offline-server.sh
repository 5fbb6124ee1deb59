#!/usr/bin/env bash
# A federated server goes offline (complement-crypto's
# TestNewUserCannotGetKeysForOfflineServer and
# TestExistingSessionCannotGetKeysForOfflineServer). Two Synapses federate
# (start_two_servers): alice and charlie on hs1, bob on hs2. hs2 is paused
# (SIGSTOP, as complement pauses a container) and resumed (SIGCONT).
#
# 1. charlie, new to bob, writes while hs2 is paused: he cannot claim a
#    one-time key of bob's device, so no Olm session, so no room key for
#    bob; ratchet warns charlie so. Once hs2 is back, charlie's next
#    message reaches bob, and the first stays undecryptable: complement-
#    crypto asserts this too ("not ideal", rust-sdk#2864). `doctor` names
#    the cause: bob holds the session only from a later index. On
#    charlie's side, `doctor --sent` says bob's device got m.no_olm while
#    hs2 was down, and was given the session only later once it was back;
#    its fix (rotate --share), pasted, makes the next message readable.
# 2. charlie already has an Olm session with bob (another room): what he
#    writes while hs2 is paused reaches bob once it is back.
source "$(dirname "$0")/lib.sh"

start_two_servers
login alice "$(register alice "$HS1")" "$HS1"
login bob "$(register bob "$HS2")" "$HS2"
login charlie "$(register charlie "$HS1")" "$HS1"
AB="$(r alice room create --encrypted --invite "$bob_ID" | q 'rs[0]["room_id"]')"
r bob room join "$AB" >/dev/null
id="$(r alice send "$AB" "alice and bob" | sent_id)"
check "bob reads alice over federation" "$(text_of bob "$id" "$AB")" "alice and bob"

step "1. hs2 paused: charlie joins and writes"
kill -STOP "$hs2_pid"
r alice room invite "$AB" "$charlie_ID" >/dev/null
r charlie room join "$AB" >/dev/null
down="$(r charlie send "$AB" "Bob can't see this because his server is down" 2>"$work/down.err" | sent_id)"
check "charlie's send says hs2's devices miss the key" "$(q '[w["message"].split(" did not answer")[0] for w in rs if w["type"]=="warning" and "one-time keys" in w["message"]]' <"$work/down.err")" "['$HS2_NAME']"
check "alice reads it" "$(text_of alice "$down" "$AB")" "Bob can't see this because his server is down"
r charlie doctor "$AB" --sent --event "$down" >"$work/sent-down.out" && exit 1
check "doctor --sent (charlie's side): bob's device got m.no_olm, as hs2 did not answer" "$(q '[(d["cause"], "server did not answer" in d["explanation"]) for d in rs if d["type"]=="delivery" and d["user_id"]=="'"$bob_ID"'"]' <"$work/sent-down.out")" "[('withheld_no_olm', True)]"
fix="$(q '[d["fix"] for d in rs if d["type"]=="delivery" and d["user_id"]=="'"$bob_ID"'"][0][0]' <"$work/sent-down.out")"
kill -CONT "$hs2_pid"

step "hs2 is back"
r bob send "$AB" "bob is back" >/dev/null   # hs2 talks to hs1 again, as complement-crypto's typing notice
back=""
for _ in $(seq 1 30); do
  back="$(r charlie send "$AB" "Bob can see this because his server is now back online" | sent_id)"
  [ "$(text_of bob "$back" "$AB")" = "Bob can see this because his server is now back online" ] && break
  sleep 1
done
check "bob reads what charlie sent once hs2 was back" "$(text_of bob "$back" "$AB")" "Bob can see this because his server is now back online"
check "not what he sent while it was down (complement-crypto asserts this too)" "$(text_of bob "$down" "$AB")" "UTD"
r bob doctor "$AB" >"$work/doctor.out" || true
check "doctor: bob holds the session only from a later index" "$(q '[d["cause"] for d in rs if d["type"]=="diagnosis" and "'"$down"'" in d["event_ids"]]' <"$work/doctor.out")" "['index_before_first_known']"
r charlie doctor "$AB" --sent --event "$down" >"$work/sent.out" && exit 1
check "doctor --sent, hs2 back: bob was given the session only after, as hs2 did not answer" "$(q '[(d["cause"], d["given_from_index"] > 0, "server did not answer" in d["explanation"]) for d in rs if d["type"]=="delivery" and d["user_id"]=="'"$bob_ID"'"]' <"$work/sent.out")" "[('given_after', True, True)]"
run_fix "$fix" >/dev/null
again="$(r charlie send "$AB" "after doctor's fix" | sent_id)"
check "doctor's fix pasted (a new session, shared now): bob reads the next message" "$(text_of bob "$again" "$AB")" "after doctor's fix"
r charlie doctor "$AB" --sent --event "$again" >/dev/null

step "2. charlie and bob already share an Olm session (room bc)"
BC="$(r charlie room create --encrypted --invite "$bob_ID" | q 'rs[0]["room_id"]')"
r bob room join "$BC" >/dev/null
id="$(r charlie send "$BC" "charlie and bob" | sent_id)"
check "bob reads charlie in bc" "$(text_of bob "$id" "$BC")" "charlie and bob"
AC="$(r alice room create --encrypted --invite "$bob_ID" | q 'rs[0]["room_id"]')"
r bob room join "$AC" >/dev/null
kill -STOP "$hs2_pid"
r alice room invite "$AC" "$charlie_ID" >/dev/null
r charlie room join "$AC" >/dev/null
held="$(r charlie send "$AC" "Bob can see this even though his server is down as we had a session already" | sent_id)"
check "alice reads it" "$(text_of alice "$held" "$AC")" "Bob can see this even though his server is down as we had a session already"
kill -CONT "$hs2_pid"
got=""
for _ in $(seq 1 30); do
  got="$(text_of bob "$held" "$AC")"
  [ "$got" = "Bob can see this even though his server is down as we had a session already" ] && break
  sleep 1
done
check "bob reads it once hs2 is back" "$got" "Bob can see this even though his server is down as we had a session already"
