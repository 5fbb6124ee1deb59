#!/usr/bin/env bash
# Leaving and rejoining (complement-crypto's
# TestOnRejoinBobCanSeeButNotDecryptHistoryInPublicRoom): bob reads what was
# sent before he left and after he came back, but not what was sent while
# he was away (the key changed when he left; the session of while he was
# away is shared with him only from the index after it); `doctor` says
# why, and names no `unwedge`. complement-crypto's clients share no
# history on invite, so alice invites with --no-history; at the end she
# shares it (MSC4268), and the message from while he was away decrypts.
source "$(dirname "$0")/lib.sh"

alice_and_bob
bodies() { q '[m["body"] for m in rs if m["type"]=="message"]'; }

step "before bob leaves"
r alice send "$ROOM" "before he left" >/dev/null
check "bob reads it" "$( (r bob messages "$ROOM" || true) | bodies)" "['before he left']"

step "while bob is away"
r bob room leave "$ROOM" >/dev/null
r alice sync >/dev/null
away="$(r alice send "$ROOM" "while he was away")"
check "a new session: a member left" "$(echo "$away" | q 'rs[0]["new_session"]')" "True"
away_id="$(echo "$away" | q 'rs[0]["event_id"]')"

step "bob comes back"
r alice room invite "$ROOM" "$bob_ID" --no-history >/dev/null
r bob room join "$ROOM" >/dev/null
r alice sync >/dev/null
r alice send "$ROOM" "after he came back" >/dev/null
code=0; out="$(r bob messages "$ROOM")" || code=$?
check "exit 3: one undecryptable" "$code" "3"
check "before and after decrypt" "$(echo "$out" | bodies)" "['before he left', 'after he came back']"
check "the one from while he was away does not" "$(echo "$out" | q '[u["event_id"] for u in rs if u["type"]=="utd"]')" "['$away_id']"
diag="$(r bob doctor "$ROOM" || true)"
# alice's session of while he was away went on after he came back, and he
# was given it from then: he holds it, but only from a later index.
check "doctor: sent before he got the key" "$(echo "$diag" | q 'rs[0]["cause"]')" "index_before_first_known"
check "no unwedge" "$(echo "$diag" | q '"unwedge" in " ".join(rs[0]["fix"])')" "False"

step "alice shares the history (MSC4268): the message from while he was away decrypts"
check "shared with a member who just joined" "$(r alice room invite "$ROOM" "$bob_ID" | q 'rs[0]["history"]')" "shared"
r bob sync >/dev/null
check "all three now" "$( (r bob messages "$ROOM" || true) | bodies)" "['before he left', 'while he was away', 'after he came back']"
