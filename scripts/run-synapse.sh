#!/usr/bin/env bash
# Runs a throwaway Synapse in the foreground: SQLite in DIR, HTTP on
# 127.0.0.1:PORT, open registration, rate limits raised. Used by the test
# harness (tests/common/synapse.rs) and by scripts/demo.sh, so both test
# against the same configuration.
#
#   scripts/run-synapse.sh DIR PORT
#
# With RATCHET_SYNAPSE_FEDERATION_PORT=FPORT and RATCHET_SYNAPSE_CA=CADIR (a
# directory holding ca.crt and ca.key), it also federates: its server name is
# the IP literal 127.0.0.1:FPORT (no DNS, no .well-known), it serves
# federation over TLS on FPORT with a certificate signed by that CA, trusts
# that CA for outgoing federation, and blocks no IP range (Synapse blocks IP-
# literal server names in its blocklist even when allow-listed).
# Two such servers sharing a CA federate with each other (examples/qa/lib.sh
# `start_two_servers`). RATCHET_SYNAPSE_CLIENT_TLS=well-known also serves the
# client API on that TLS port with /.well-known/matrix/client naming the plain
# HTTP listener (server discovery, tests/login.rs); =plain serves the client
# API there without a .well-known (the spec's fallback to the server name).
#
# The server stops when this script receives SIGTERM/SIGINT, or when its stdin
# reaches end-of-file if RATCHET_SYNAPSE_STOP_ON_EOF=1 (the test harness holds
# the write end of a pipe, so Synapse dies with the test process, even on a
# panic or SIGKILL).
set -euo pipefail

dir="${1:?usage: run-synapse.sh DIR PORT}"
port="${2:?usage: run-synapse.sh DIR PORT}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$("$root/scripts/setup-synapse.sh")"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

fport="${RATCHET_SYNAPSE_FEDERATION_PORT:-}"
server_name="localhost"
baseurl="public_baseurl: \"http://127.0.0.1:$port/\""
federation=""
if [ -n "$fport" ]; then
  ca="${RATCHET_SYNAPSE_CA:?RATCHET_SYNAPSE_FEDERATION_PORT needs RATCHET_SYNAPSE_CA}"
  server_name="127.0.0.1:$fport"
  openssl req -new -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' > "$dir/tls.ext"
  # A random serial: two servers signing at once share no serial file.
  openssl x509 -req -in "$dir/tls.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 2 -extfile "$dir/tls.ext" -out "$dir/tls.crt" 2>/dev/null
  names="federation, keys"
  case "${RATCHET_SYNAPSE_CLIENT_TLS:-}" in
    "") ;;
    well-known) names="federation, keys, client" ;;
    # Synapse serves /.well-known/matrix/client exactly when public_baseurl
    # is set: left out here.
    plain) names="federation, keys, client"; baseurl="" ;;
    *) echo "RATCHET_SYNAPSE_CLIENT_TLS must be well-known or plain" >&2; exit 2 ;;
  esac
  federation="
  - port: $fport
    bind_addresses: [\"127.0.0.1\"]
    type: http
    tls: true
    resources:
      - names: [$names]
tls_certificate_path: \"$dir/tls.crt\"
tls_private_key_path: \"$dir/tls.key\"
federation_custom_ca_list: [\"$ca/ca.crt\"]
ip_range_blacklist: []
rc_federation: {window_size: 1000, sleep_limit: 10000, sleep_delay: 0, reject_limit: 10000, concurrent: 100}
# A paused peer is retried within seconds of coming back, not after
# Synapse's ten-minute backoff; a request to it gives up after 10 s.
federation:
  client_timeout: 10s
  max_long_retries: 2
  max_short_retries: 1
  destination_min_retry_interval: 1s
  destination_retry_multiplier: 1.5
  destination_max_retry_interval: 5s"
fi

secret() { "$venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))'; }

# RATCHET_SYNAPSE_OIDC_ISSUER=URL: single sign-on delegated to the OpenID
# Connect provider at URL (tests/peer/sso/provider.mjs), offered as two
# identity providers, oidc-one and oidc-two (Synapse adds the prefix; its
# clients synapse-one and synapse-two). The user's
# localpart is the name they sign in with. skip_verification allows the
# provider's plain-HTTP issuer on 127.0.0.1.
oidc=""
if [ -n "${RATCHET_SYNAPSE_OIDC_ISSUER:-}" ]; then
  provider() {
    printf '  - idp_id: %s\n    idp_name: "Test IdP %s"\n    issuer: "%s"\n    client_id: "synapse-%s"\n' \
      "$1" "$1" "$RATCHET_SYNAPSE_OIDC_ISSUER" "$1"
    printf '    client_secret: "secret"\n    scopes: ["openid", "profile"]\n    skip_verification: true\n'
    printf '    user_profile_method: userinfo_endpoint\n'
    printf '    user_mapping_provider:\n      config:\n        localpart_template: "{{ user.preferred_username }}"\n'
    printf '        display_name_template: "{{ user.name }}"\n'
  }
  oidc="oidc_providers:
$(provider one)
$(provider two)"
fi

# RATCHET_SYNAPSE_MAS_ENDPOINT=URL and RATCHET_SYNAPSE_MAS_SECRET=S:
# authentication delegated to an OAuth 2.0 service in the place of the
# Matrix Authentication Service (tests/peer/sso/oauth-provider.mjs): no
# password login and no registration here (Synapse refuses them with it);
# users and devices come from the service.
registration="enable_registration: true"
mas=""
if [ -n "${RATCHET_SYNAPSE_MAS_ENDPOINT:-}" ]; then
  registration="enable_registration: false
password_config: {enabled: false}"
  mas="matrix_authentication_service:
  enabled: true
  endpoint: \"$RATCHET_SYNAPSE_MAS_ENDPOINT\"
  secret: \"${RATCHET_SYNAPSE_MAS_SECRET:?RATCHET_SYNAPSE_MAS_ENDPOINT needs RATCHET_SYNAPSE_MAS_SECRET}\""
fi

cat > "$dir/log.config" <<YAML
version: 1
formatters:
  precise:
    format: '%(asctime)s %(levelname)s %(name)s %(request)s %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: $dir/homeserver.log
    filters: [context]
filters:
  context:
    (): synapse.logging.context.LoggingContextFilter
    request: ""
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
YAML

# Rate limits are raised far above anything the tests do: the suite registers
# many users and sends bursts of messages from one address.
cat > "$dir/homeserver.yaml" <<YAML
server_name: "$server_name"
$baseurl
pid_file: "$dir/homeserver.pid"
listeners:
  - port: $port
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false$federation
database:
  name: sqlite3
  args:
    database: "$dir/homeserver.db"
log_config: "$dir/log.config"
media_store_path: "$dir/media_store"
# RATCHET_SYNAPSE_MAX_UPLOAD (say 64K): a small upload limit, for the test
# of a file over it.
max_upload_size: "${RATCHET_SYNAPSE_MAX_UPLOAD:-50M}"
signing_key_path: "$dir/signing.key"
trusted_key_servers: []
suppress_key_server_warning: true
report_stats: false
$registration
# Cheap password hashing: the suite and the QA scripts register hundreds of users.
bcrypt_rounds: 4
enable_registration_without_verification: true
registration_shared_secret: "$(secret)"
macaroon_secret_key: "$(secret)"
form_secret: "$(secret)"
presence:
  enabled: false
url_preview_enabled: false
rc_message: {per_second: 10000, burst_count: 10000}
rc_registration: {per_second: 10000, burst_count: 10000}
rc_login:
  address: {per_second: 10000, burst_count: 10000}
  account: {per_second: 10000, burst_count: 10000}
  failed_attempts: {per_second: 10000, burst_count: 10000}
rc_joins:
  local: {per_second: 10000, burst_count: 10000}
  remote: {per_second: 10000, burst_count: 10000}
rc_joins_per_room: {per_second: 10000, burst_count: 10000}
rc_invites:
  per_room: {per_second: 10000, burst_count: 10000}
  per_user: {per_second: 10000, burst_count: 10000}
  per_issuer: {per_second: 10000, burst_count: 10000}
rc_key_requests: {per_second: 10000, burst_count: 10000}
rc_3pid_validation: {per_second: 10000, burst_count: 10000}
rc_admin_redaction: {per_second: 10000, burst_count: 10000}
rc_room_creation: {per_second: 10000, burst_count: 10000}
rc_presence:
  per_user: {per_second: 10000, burst_count: 10000}
$oidc
$mas
YAML

"$venv/bin/python" -m synapse.app.homeserver -c "$dir/homeserver.yaml" --generate-keys >/dev/null

if [ "${RATCHET_SYNAPSE_STOP_ON_EOF:-0}" = 1 ]; then
  "$venv/bin/python" -m synapse.app.homeserver -c "$dir/homeserver.yaml" &
  child=$!
  cleanup() {
    kill "$child" 2>/dev/null
    wait "$child" 2>/dev/null
    if [ "${RATCHET_SYNAPSE_CLEANUP:-0}" = 1 ]; then rm -rf "$dir"; fi
  }
  trap cleanup EXIT
  # Blocks until the harness's end of the pipe closes.
  cat >/dev/null || true
  exit 0
fi
exec "$venv/bin/python" -m synapse.app.homeserver -c "$dir/homeserver.yaml"
