# make demo   build and run Caddy with session_auth in front of the demo app
# make test   every test: lint, unit, conformance and integration (real redis-server)
# make lint   gofmt, go vet, staticcheck
# make bench  load against plain reverse_proxy and the store benchmarks (a few minutes)
# make bench-size  the file store's figures at 10^6 sessions (10 to 20 minutes, estimated)
# make bench-peers session_auth beside Caddy forward_auth → oauth2-proxy (built here at a pinned version),
#                  latency at fixed rates, revocation timings, Redis memory at 10^6 sessions (about 12 to 15 minutes)
# make fuzz   every fuzz target for FUZZTIME (default 1m) each; the seed corpora run in make test

SHELL     := bash
GO        ?= go
TESTFLAGS ?= -race -count=1 -timeout 20m
# staticcheck runs at a pinned version fetched from the module proxy, so
# that no tool enters the plugin's go.mod.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# integration/ is a module of its own (tests against real Caddy, Redis and
# Chromium, and the load benchmark) so that its dependencies stay out of the
# plugin's go.mod; every target covers both modules.
MODULES   := . integration
FUZZTIME  ?= 1m
# A new input is minimized for at most this long: FuzzCookieAndHandOff
# mints sessions in a file store (an fsync each), and minimizing a long
# input for the default minute would use up a short FUZZTIME.
FUZZMINIMIZE ?= 5s
FUZZ_TARGETS := .:FuzzSafeNext .:FuzzLoginPath .:FuzzSanitise .:FuzzCaddyfile .:FuzzCookieAndHandOff .:FuzzConnectionTokens .:FuzzCallbackQuery .:FuzzAccountsForm .:FuzzRuleReadings ./session:FuzzParseCredential

.PHONY: all build demo test lint unit bench bench-size bench-peers fuzz clean

all: build

build:
	$(GO) build -o bin/caddy ./cmd/caddy
	$(GO) build -o bin/demoapp ./examples/demoapp/cmd/demoapp
	cd integration && $(GO) build -o ../bin/mailsink ./cmd/mailsink

demo: build
	./examples/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do \
		echo "== vet and staticcheck: $$m"; \
		(cd $$m && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...) || exit 1; \
	done

# Each module's events are kept, so that the run closes with a summary of
# what ran: packages, tests, skips by reason, and which real servers
# (Redis, its Cluster and Sentinel) and browser (Chromium) were used.
unit:
	@set -o pipefail; events=$$(mktemp -d); trap 'rm -rf "$$events"' EXIT; status=0; \
	$(GO) build -o "$$events/testsummary" ./internal/testsummary || exit 1; \
	for m in $(MODULES); do \
		echo "== go test: $$m"; \
		(cd $$m && $(GO) test -json $(TESTFLAGS) ./...) | tee "$$events/$$(echo $$m | tr -c 'a-z\n' _).json" | "$$events/testsummary" -progress || status=1; \
	done; \
	"$$events/testsummary" "$$events"/*.json || status=1; \
	exit $$status

test: lint unit

bench: build
	$(GO) test -run '^$$' -bench . -benchmem . ./session ./geo
	cd integration && $(GO) run ./bench -caddy ../bin/caddy $(BENCHFLAGS)

# The file store alone, at 10^6 sessions: bytes per session, sign-ins/s,
# CPU at rest (over a minute) and signing everyone out.
bench-size: build
	cd integration && $(GO) run ./bench -caddy ../bin/caddy -file-only -file-sessions 1000000 -idle 1m $(BENCHFLAGS)

# oauth2-proxy, the peer of make bench-peers, built from its Go module at
# a pinned version into bin/ (never committed).
OAUTH2_PROXY ?= github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6

# session_auth (file, Redis, Redis + cache), Caddy forward_auth → oauth2-proxy
# with Redis sessions and forward_auth → this gateway, in one interleaved run
# with plain reverse_proxy; then latency at fixed rates (open loop), the time
# from a revocation at one gateway to the first refusal at another, Redis
# commands per request and Redis memory per session at 10^6 sessions.
bench-peers: build
	GOBIN=$(CURDIR)/bin $(GO) install $(OAUTH2_PROXY)
	cd integration && $(GO) run ./bench -caddy ../bin/caddy -peers -oauth2-proxy ../bin/oauth2-proxy -rounds 5 -sessions 1000000 $(BENCHFLAGS)

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; out=$$(mktemp); \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		if ! $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$pkg > $$out 2>&1; then \
			cat $$out; rm -f $$out; exit 1; \
		fi; \
		grep -E 'fuzz: elapsed' $$out | tail -1; rm -f $$out; \
	done

clean:
	rm -rf bin
