#!/usr/bin/env bash
# Measures a well-known token issuer on this machine, for BENCHMARKS.md's comparison:
# Glewlwyd (an OAuth2 / OpenID Connect server in C, Debian package `glewlwyd`), issuing
# EdDSA-signed JWT access tokens with the client_credentials grant, loaded by `wrk`.
#
#   scripts/bench-glewlwyd.sh [SECONDS_PER_LEVEL] [CONCURRENCY ...]   (default: 5  1 16 64 256)
#
# Settings chosen to compare issuance machinery, not password hashing or disk syncs:
#   - its SQLite database on tmpfs (/dev/shm): Tessera's benchmark runs Redis without
#     persistence and JetStream with its default periodic sync;
#   - the client secret hashed with 1 PBKDF2 iteration instead of its default 150,000 (each
#     token request authenticates the client with its secret; Tessera's token request
#     carries an account token checked by signature, cached);
#   - log level WARNING (INFO logs every token).
# Loopback only; the server is stopped at the end. Installs glewlwyd, wrk and sqlite3 with
# apt-get when missing (not part of `make test`).
set -euo pipefail

SECS=${1:-5}
shift || true
LEVELS=("$@")
[ ${#LEVELS[@]} -gt 0 ] || LEVELS=(1 16 64 256)
PORT=${GLEWLWYD_PORT:-4599}
URL="http://127.0.0.1:$PORT/api"

need=()
command -v glewlwyd >/dev/null || need+=(glewlwyd)
command -v wrk >/dev/null || need+=(wrk)
command -v sqlite3 >/dev/null || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from the OS packages" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

dir=$(mktemp -d /dev/shm/glewlwyd.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

zcat /usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz | sqlite3 "$dir/g.db"
sed -e "s/^port=.*/port=$PORT/" \
    -e 's|^log_mode=.*|log_mode="console"|' \
    -e 's|^log_level=.*|log_level="WARNING"|' \
    -e "s|^external_url=.*|external_url=\"http://127.0.0.1:$PORT/\"|" \
    -e "s|^@include.*|database = { type = \"sqlite3\"; path = \"$dir/g.db\"; };|" \
    /etc/glewlwyd/glewlwyd.conf > "$dir/g.conf"
glewlwyd --config-file="$dir/g.conf" > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "$URL/user/profile" && break; sleep 0.1; done

# The default administrator of a fresh database; a session cookie for the admin API.
api() { curl -sS --fail-with-body -b "$dir/cj" -H 'Content-Type: application/json' "$@"; }
curl -sf -c "$dir/cj" -H 'Content-Type: application/json' \
  -d '{"username":"admin","password":"password"}' "$URL/auth/" -o /dev/null

openssl genpkey -algorithm ed25519 -out "$dir/ed.key" 2>/dev/null
openssl pkey -in "$dir/ed.key" -pubout -out "$dir/ed.pem"
python3 - "$dir" <<'EOF'
import json, sys
d = sys.argv[1]
params = {
    "iss": "http://127.0.0.1", "jwt-type": "eddsa", "jwt-key-size": "256",
    "key": open(f"{d}/ed.key").read(), "cert": open(f"{d}/ed.pem").read(),
    "access-token-duration": 900, "refresh-token-duration": 1209600, "code-duration": 600,
    "refresh-token-rolling": False, "allow-non-oidc": True, "auth-type-client-enabled": True,
    "auth-type-code-enabled": False, "auth-type-token-enabled": False,
    "auth-type-id-token-enabled": True, "auth-type-none-enabled": False,
    "auth-type-password-enabled": False, "auth-type-refresh-enabled": False,
    "jwks-show": True, "scope": [], "claims": [], "subject-type": "public",
}
json.dump({"module": "oidc", "name": "oidc", "display_name": "OIDC", "enabled": True,
           "parameters": params}, open(f"{d}/plugin.json", "w"))
EOF
api -X POST -d @"$dir/plugin.json" "$URL/mod/plugin/" -o /dev/null
api -X POST -d '{"name":"plugin","display_name":"plugin","description":"plugin access","password_required":false,"scheme":{}}' \
  "$URL/scope/" -o /dev/null
# One PBKDF2 iteration for client secrets (see above); the module reloads on disable/enable.
api "$URL/mod/client/database" | python3 -c '
import json, sys; d = json.load(sys.stdin); d["parameters"]["pbkdf2-iterations"] = 1; print(json.dumps(d))' \
  > "$dir/client-module.json"
api -X PUT -d @"$dir/client-module.json" "$URL/mod/client/database" -o /dev/null
api -X PUT "$URL/mod/client/database/disable" -o /dev/null
api -X PUT "$URL/mod/client/database/enable" -o /dev/null
api -X POST -d '{"client_id":"bench","name":"bench","description":"","confidential":true,"password":"benchsecret","authorization_type":["client_credentials"],"scope":["plugin"],"redirect_uri":[],"enabled":true,"token_endpoint_auth_method":["client_secret_basic"]}' \
  "$URL/client/" -o /dev/null

# One token by hand, to show what is measured.
token=$(curl -sf -u bench:benchsecret -d 'grant_type=client_credentials&scope=plugin' "$URL/oidc/token")
python3 -c 'import json,sys,base64; t=json.loads(sys.argv[1])["access_token"]; h=t.split(".")[0]; print("token header:", base64.urlsafe_b64decode(h+"=="*2).decode())' "$token"

cat > "$dir/tok.lua" <<EOF
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=plugin"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf bench:benchsecret | base64)"
EOF

echo "glewlwyd $(dpkg-query -W -f='${Version}' glewlwyd), SQLite on tmpfs, client_credentials, EdDSA JWT; ${SECS}s per level"
printf '%-6s %10s %10s %10s %10s %8s\n' conns tokens/s p50 p90 p99 errors
for c in "${LEVELS[@]}"; do
  out=$(wrk -t1 -c"$c" -d"${SECS}s" --latency -s "$dir/tok.lua" "$URL/oidc/token" 2>&1)
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p90=$(echo "$out" | awk '$1=="90%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {s=s $0} END {print (s=="" ? 0 : "yes")}')
  printf '%-6s %10s %10s %10s %10s %8s\n' "$c" "$rate" "$p50" "$p90" "$p99" "$errs"
done
