#!/usr/bin/env bash
# Runs the demo: the demo app on 127.0.0.1:9090 behind Caddy with
# session_auth on http://localhost:8080. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

export SESSION_STORE="memory"
if [ -n "${REDIS_URL:-}" ]; then
	export SESSION_STORE="redis ${REDIS_URL}"
fi

./bin/demoapp -listen 127.0.0.1:9090 &
app=$!
trap 'kill $app 2>/dev/null || true' EXIT INT TERM

cat <<MSG

  session_auth demo (store: ${SESSION_STORE%% *})
    open     http://localhost:8080/          (sign in as alice or bob, password: demo)
    me       curl -b cookies -c cookies http://localhost:8080/.auth/me
    admin    curl localhost:2019/session-auth/users/alice/sessions
    stop     Ctrl-C

MSG
./bin/caddy run --config Caddyfile.example --adapter caddyfile
