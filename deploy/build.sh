#!/bin/sh
# deploy/build.sh OUTPUT builds Caddy with session_auth through xcaddy from
# this checkout (local changes included) and checks that the binary has the
# plugin's modules. The Dockerfile's build stage runs it, and so does
# integration/deploy_test.go: what the image gets is what the test built.
set -eu
out=${1:?usage: deploy/build.sh OUTPUT}
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")/.."

# The Caddy release this checkout is built and tested against.
caddy_version=$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)
# A static binary: the image's runtime stage has no C library.
export CGO_ENABLED=0
# @v0.0.0 names this checkout: with the module's path alone, xcaddy's
# `go get` asks the module proxy for a released version first, and fails
# where none is published.
go run github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5 \
	build "$caddy_version" --with github.com/sessionauth/caddy-sessionauth@v0.0.0=. --output "$out"

modules=$("$out" list-modules)
for m in session_auth http.handlers.session_auth http.handlers.session_require admin.api.session_auth; do
	if ! printf '%s\n' "$modules" | grep -qx "$m"; then
		echo "deploy/build.sh: $out does not list the module $m" >&2
		exit 1
	fi
done
echo "built $out: Caddy $caddy_version with session_auth"
