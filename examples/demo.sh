#!/usr/bin/env bash
# Runs the demo: the demo app on 127.0.0.1:9090 behind Caddy with
# session_auth on http://localhost:8080, and a mail sink on 127.0.0.1:2525
# that prints the gateway's new-sign-in mails here. Ctrl-C stops all.
# PORT, ADMIN_PORT, APP_PORT and MAIL_PORT move them elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

export PORT="${PORT:-8080}" ADMIN_PORT="${ADMIN_PORT:-2019}"
export APP_PORT="${APP_PORT:-9090}" MAIL_PORT="${MAIL_PORT:-2525}"
export UPSTREAM="127.0.0.1:${APP_PORT}"
# The file store, Caddy's default, at its default place: sessions survive
# Ctrl-C and the next `make demo`. REDIS_URL switches to Redis.
export SESSION_STORE="file"
store_banner="file $(./bin/caddy environ | sed -n 's/^caddy.AppDataDir=//p')/session_auth/sessions.db"
if [ -n "${REDIS_URL:-}" ]; then
	export SESSION_STORE="redis ${REDIS_URL}"
	store_banner="redis ${REDIS_URL%%@*}"
	case "$REDIS_URL" in *@*) store_banner="redis (credentials hidden)" ;; esac
fi

./bin/demoapp -listen "127.0.0.1:${APP_PORT}" &
app=$!
./bin/mailsink -listen "127.0.0.1:${MAIL_PORT}" &
sink=$!
trap 'kill $app $sink 2>/dev/null || true' EXIT INT TERM

cat <<MSG

  session_auth demo (store: ${store_banner})
    open     http://localhost:${PORT}/          (sign in as alice or bob, password: demo)
    mail     sign in as the same user from a second browser (or a private
             window): the new-sign-in mail is printed here
    me       curl -b cookies -c cookies http://localhost:${PORT}/.auth/me
    admin    curl localhost:${ADMIN_PORT}/session-auth/users/alice/sessions
    stop     Ctrl-C

MSG
./bin/caddy run --config Caddyfile.example --adapter caddyfile
