# g.nome — `make run` starts the whole platform; `make test` runs every test.

GO      ?= go
MODULES := libs services/edge services/auth services/upload services/export services/actorworker services/gnome bench
SERVICES := edge auth upload export actorworker
PKGS    := $(foreach m,$(MODULES),./$(m)/...)
# Tests that start processes or many servers are kept from running in
# parallel with each other across packages: the machine has 2 cores.
TESTFLAGS ?= -count=1 -timeout 20m -p 2

.PHONY: all build run test check fmt vet generate test-unit test-race test-e2e bench clean

all: build

build:
	@mkdir -p bin
	$(GO) build -o bin/gnome ./services/gnome/cmd/gnome
	@for s in $(SERVICES); do echo "$(GO) build -o bin/$$s ./services/$$s/cmd/$$s"; $(GO) build -o bin/$$s ./services/$$s/cmd/$$s || exit 1; done

run: build
	./bin/gnome serve

# Everything: formatting, vet, generated code, unit and integration tests
# (embedded NATS and store), the race detector on libs, end-to-end tests
# against the built binaries.
test: check build
	$(GO) test $(TESTFLAGS) -race ./libs/...
	$(GO) test $(TESTFLAGS) $(foreach m,$(filter-out libs,$(MODULES)),./$(m)/...)

check: generate-check
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $(MODULES)

generate:
	cd libs && $(GO) generate ./apierr ./bundle

generate-check:
	@cd libs && $(GO) run ./apierr/gen ../schemas/errors.json /tmp/gnome-catalogue-check.go && \
	  if ! cmp -s /tmp/gnome-catalogue-check.go apierr/catalogue_gen.go; then \
	    echo "libs/apierr/catalogue_gen.go is out of date with schemas/errors.json: run make generate"; exit 1; fi
	@cmp -s schemas/manifest.schema.json libs/bundle/manifest.schema.json || \
	  { echo "libs/bundle/manifest.schema.json is out of date with schemas/manifest.schema.json: run make generate"; exit 1; }

bench: build
	$(GO) run ./bench/cmd/gnome-bench $(BENCHFLAGS)

clean:
	rm -rf bin
