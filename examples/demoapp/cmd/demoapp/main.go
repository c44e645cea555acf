// Command demoapp serves the demo upstream for `make demo`: an app with
// its own login that hands sign-ins off to the gateway, or, with
// -no-login, a stand-in for an app that has no login at all.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/sessionauth/caddy-sessionauth/examples/demoapp"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:9090", "address to listen on")
	noLogin := flag.Bool("no-login", false, "serve an app with no login of its own, which shows the identity the gateway forwards")
	flag.Parse()
	handler, what := demoapp.New(), "demo app"
	if *noLogin {
		handler, what = demoapp.NewNoLogin(), "no-login demo app"
	}
	// Listen before saying so: a port in use is the one line printed,
	// with -listen named as the way out.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("%s: %v (another port: -listen 127.0.0.1:<port>, and the same port in the Caddyfile's reverse_proxy)", what, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("%s listening on http://%s (reach it through Caddy)", what, ln.Addr())
	log.Fatal(srv.Serve(ln))
}
