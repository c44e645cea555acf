# make demo   build and run Caddy with session_auth in front of the demo app
# make test   every test: lint, unit, conformance and integration (real redis-server)
# make lint   gofmt, go vet, staticcheck
# make bench  load against plain reverse_proxy and the store benchmarks (a few minutes)
# make fuzz   every fuzz target for FUZZTIME (default 1m) each; the seed corpora run in make test

GO        ?= go
TESTFLAGS ?= -race -count=1 -timeout 20m
FUZZTIME  ?= 1m
FUZZ_TARGETS := .:FuzzSafeNext .:FuzzLoginPath .:FuzzSanitise .:FuzzCaddyfile .:FuzzCookieAndHandOff .:FuzzConnectionTokens ./session:FuzzParseCredential

.PHONY: all build demo test lint unit bench fuzz clean

all: build

build:
	$(GO) build -o bin/caddy ./cmd/caddy
	$(GO) build -o bin/demoapp ./examples/demoapp/cmd/demoapp

demo: build
	./examples/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

unit:
	$(GO) test $(TESTFLAGS) ./...

test: lint unit

bench: build
	$(GO) test -run '^$$' -bench . -benchmem . ./session ./geo
	$(GO) run ./bench -caddy bin/caddy

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; out=$$(mktemp); \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		if ! $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg > $$out 2>&1; then \
			cat $$out; rm -f $$out; exit 1; \
		fi; \
		grep -E 'fuzz: elapsed' $$out | tail -1; rm -f $$out; \
	done

clean:
	rm -rf bin
