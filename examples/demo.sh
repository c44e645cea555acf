#!/usr/bin/env bash
# Runs the demo: the demo app on 127.0.0.1:9090 behind Caddy with
# session_auth on http://localhost:8080, an app with no login of its own
# (the demo app with -no-login, on 127.0.0.1:9091) on
# http://localhost:8081 behind the gateway's sign-in, and a mail sink on
# 127.0.0.1:2525 that prints the gateway's new-sign-in mails here, all
# listening on this machine only. Once Caddy is up it invites carol, a
# stored account of the no-login site, and prints her invitation link.
# Ctrl-C stops all. PORT, SIGNIN_PORT,
# ADMIN_PORT, APP_PORT, NOLOGIN_APP_PORT and MAIL_PORT move them to other
# ports; BIN_DIR (default ./bin) says where the binaries are.
set -euo pipefail
cd "$(dirname "$0")/.."

export PORT="${PORT:-8080}" SIGNIN_PORT="${SIGNIN_PORT:-8081}" ADMIN_PORT="${ADMIN_PORT:-2019}"
export APP_PORT="${APP_PORT:-9090}" NOLOGIN_APP_PORT="${NOLOGIN_APP_PORT:-9091}" MAIL_PORT="${MAIL_PORT:-2525}"
export UPSTREAM="127.0.0.1:${APP_PORT}" NOLOGIN_UPSTREAM="127.0.0.1:${NOLOGIN_APP_PORT}"
BIN_DIR="${BIN_DIR:-./bin}"

# The file store, in Caddy's data directory, in a file of the demo's own
# port: sessions survive Ctrl-C and the next `make demo` on that port, and
# a second demo on other ports does not find the first one's file locked.
# REDIS_URL switches to Redis. The full access log goes beside it; the
# terminal gets one short line per request.
demo_dir="$("$BIN_DIR/caddy" environ | sed -n 's/^caddy.AppDataDir=//p')/session_auth"
export SESSION_STORE="file ${demo_dir}/demo-${PORT}.db"
export ACCESS_LOG="${ACCESS_LOG:-${demo_dir}/demo-${PORT}-access.log}"
store_banner="$SESSION_STORE"
export DEMO_TOTP_SECRET="${DEMO_TOTP_SECRET:-JBSWY3DPEHPK3PXP}"
if [ -n "${REDIS_URL:-}" ]; then
	export SESSION_STORE="redis ${REDIS_URL}"
	store_banner="redis ${REDIS_URL%%@*}"
	case "$REDIS_URL" in *@*) store_banner="redis (credentials hidden)" ;; esac
fi

# Every port the demo listens on, checked before anything starts: a second
# demo beside a running one would otherwise share them, and sessions would
# seem to vanish at random.
DEMO_PORTS=("$PORT:the site" "$SIGNIN_PORT:the no-login site" "$ADMIN_PORT:Caddy's admin API" "$APP_PORT:the demo app" "$NOLOGIN_APP_PORT:the no-login demo app" "$MAIL_PORT:the mail sink")

# holder names the process listening on a port, as far as the system tells.
holder() {
	local who=""
	if command -v ss >/dev/null; then
		who=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -1 | sed 's/users:(("\([^"]*\)",pid=\([0-9]*\)/\1 (pid \2)/')
	fi
	if [ -z "$who" ] && command -v lsof >/dev/null; then
		who=$(lsof -nP -iTCP:"$1" -sTCP:LISTEN 2>/dev/null | awk 'NR==2 {print $1 " (pid " $2 ")"}')
	fi
	echo "${who:-a process this user cannot see}"
}

busy=0
for entry in "${DEMO_PORTS[@]}"; do
	port="${entry%%:*}" what="${entry#*:}"
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "demo: port $port ($what) is in use by $(holder "$port")" >&2
		busy=1
	fi
done
if [ "$busy" = 1 ]; then
	echo "demo: is another demo running? Stop it, or run this one on other ports: PORT=8180 SIGNIN_PORT=8181 ADMIN_PORT=2119 APP_PORT=9190 NOLOGIN_APP_PORT=9191 MAIL_PORT=2625 make demo" >&2
	exit 1
fi

"$BIN_DIR/demoapp" -listen "$UPSTREAM" &
app=$!
"$BIN_DIR/demoapp" -no-login -listen "$NOLOGIN_UPSTREAM" &
nologin=$!
"$BIN_DIR/mailsink" -listen "127.0.0.1:${MAIL_PORT}" &
sink=$!
trap 'kill $app $nologin $sink 2>/dev/null || true' EXIT INT TERM
for entry in "$app:$APP_PORT" "$nologin:$NOLOGIN_APP_PORT"; do
	pid="${entry%%:*}" port="${entry#*:}"
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || { echo "demo: the demo app did not start on 127.0.0.1:$port" >&2; exit 1; }
		sleep 0.1
	done
done

cat <<MSG

  session_auth demo (store: ${store_banner}), listening on this machine only
    hand-off  http://localhost:${PORT}/          (the app's own login: alice or bob, password: demo)
      sessions  http://localhost:${PORT}/.auth/sessions   (Where you're signed in)
      curl      curl -si -c jar -d 'username=alice&password=demo' http://localhost:${PORT}/login
                curl -s -b jar http://localhost:${PORT}/.auth/me
      mail      sign in as the same user from a second browser (or a private
                window): the new-sign-in mail is printed here
    no-login  http://localhost:${SIGNIN_PORT}/          (an app with no login of its own, behind the gateway's
                                               sign-in: alice or bob, password: demo;
                                               bob's TOTP secret: ${DEMO_TOTP_SECRET} — add it to an
                                               authenticator app, or: oathtool --totp -b ${DEMO_TOTP_SECRET});
                                               carol: the invitation printed below, once Caddy is up)
    admin     curl localhost:${ADMIN_PORT}/session-auth/users/alice/sessions
    logs      one line per request here; every request in full in ${ACCESS_LOG}
    stop      Ctrl-C

MSG
"$BIN_DIR/caddy" run --config Caddyfile.example --adapter caddyfile &
caddy=$!
trap 'kill $app $nologin $sink $caddy 2>/dev/null || true' EXIT INT TERM

# carol is a stored account of the no-login site, invited here as an
# operator would (the admin API, through `caddy sessions accounts`): her
# link lets a newcomer choose a password and then add a passkey in their
# own browser. The store keeps her across runs: while she has not used her
# link, a new one replaces it (reset); once she has, she signs in.
invite_carol() {
	local cli=("$BIN_DIR/caddy" sessions accounts --address "localhost:${ADMIN_PORT}") out=""
	for _ in $(seq 100); do
		kill -0 "$caddy" 2>/dev/null || return 0
		if out=$("${cli[@]}" add carol --email carol@example.com --name "Carol Example" --json 2>&1); then
			break
		fi
		case "$out" in
		*"HTTP 409"*)
			if "${cli[@]}" show carol --json 2>/dev/null | grep -q '"password": *false'; then
				out=$("${cli[@]}" reset carol --json 2>&1) && break
			fi
			cat <<MSG

  carol has used her invitation: sign in as carol on http://localhost:${SIGNIN_PORT}/
  (a new invitation: $BIN_DIR/caddy sessions accounts reset carol --address localhost:${ADMIN_PORT})

MSG
			return 0
			;;
		esac
		sleep 0.1 # Caddy is still starting
	done
	local path
	path=$(printf '%s' "$out" | sed -n 's/.*"invite": *"\([^"]*\)".*/\1/p')
	if [ -z "$path" ]; then
		echo "demo: inviting carol failed: $out" >&2
		return 0
	fi
	cat <<MSG

  invitation  carol, a stored account, is invited (the link works once, for 7 days):
                http://localhost:${SIGNIN_PORT}${path}
              open it and choose a password (you are signed in), then add a passkey on
                http://localhost:${SIGNIN_PORT}/.auth/account/passkeys
              sign out, and "Sign in with a passkey" needs no user name

MSG
}
invite_carol
wait $caddy
