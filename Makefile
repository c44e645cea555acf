# make demo   build and run Caddy with session_auth in front of the demo app
# make test   every test: lint, unit, conformance and integration (real redis-server)
# make lint   gofmt, go vet, staticcheck
# make bench  Go benchmarks of the hot path

GO        ?= go
TESTFLAGS ?= -race -count=1 -timeout 20m

.PHONY: all build demo test lint unit bench clean

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
