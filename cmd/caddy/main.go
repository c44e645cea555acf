// Command caddy is Caddy with the standard modules and session_auth, the
// same binary `xcaddy build --with github.com/sessionauth/caddy-sessionauth`
// produces.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/sessionauth/caddy-sessionauth"
)

func main() {
	caddycmd.Main()
}
