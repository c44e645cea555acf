#!/usr/bin/env bash
# Runs the demo: the demo app on 127.0.0.1:9090 behind Caddy with
# session_auth on http://localhost:8080, and a page with no login of its
# own on http://localhost:8081 behind the gateway's sign-in. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

# The file store, Caddy's default, at its default place: sessions survive
# Ctrl-C and the next `make demo`. REDIS_URL switches to Redis.
export SESSION_STORE="file"
store_banner="file $(./bin/caddy environ | sed -n 's/^caddy.AppDataDir=//p')/session_auth/sessions.db"
export DEMO_TOTP_SECRET="${DEMO_TOTP_SECRET:-JBSWY3DPEHPK3PXP}"
if [ -n "${REDIS_URL:-}" ]; then
	export SESSION_STORE="redis ${REDIS_URL}"
	store_banner="redis ${REDIS_URL%%@*}"
	case "$REDIS_URL" in *@*) store_banner="redis (credentials hidden)" ;; esac
fi

./bin/demoapp -listen 127.0.0.1:9090 &
app=$!
trap 'kill $app 2>/dev/null || true' EXIT INT TERM

cat <<MSG

  session_auth demo (store: ${store_banner})
    open     http://localhost:8080/          (sign in as alice or bob, password: demo)
    no-login http://localhost:8081/          (the gateway's own sign-in: alice or bob, password: demo;
                                              bob's TOTP secret: ${DEMO_TOTP_SECRET} — add it to an
                                              authenticator app, or: oathtool --totp -b ${DEMO_TOTP_SECRET})
    me       curl -b cookies -c cookies http://localhost:8080/.auth/me
    admin    curl localhost:2019/session-auth/users/alice/sessions
    stop     Ctrl-C

MSG
./bin/caddy run --config Caddyfile.example --adapter caddyfile
