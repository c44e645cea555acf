// Command demoapp serves the demo upstream for `make demo`.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/sessionauth/caddy-sessionauth/examples/demoapp"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:9090", "address to listen on")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: demoapp.New(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("demo app listening on http://%s (reach it through Caddy)", *addr)
	log.Fatal(srv.ListenAndServe())
}
