# g.nome — `make run` starts the whole platform; `make test` runs every test.

GO      ?= go
MODULES := libs libs/actorjs libs/actorsdk services/edge services/auth services/upload services/export services/actorworker services/gnome bench examples deploy
SERVICES := edge auth upload export actorworker
PKGS    := $(foreach m,$(MODULES),./$(m)/...)
# Tests that start processes or many servers are kept from running in
# parallel with each other across packages: the machine has 2 cores.
TESTFLAGS ?= -count=1 -timeout 20m -p 2

.PHONY: all build gnome jsruntime run test check fmt vet generate generate-check examples bench clean

all: build

build: jsruntime
	@mkdir -p bin
	$(GO) build -o bin/gnome ./services/gnome/cmd/gnome
	@for s in $(SERVICES); do echo "$(GO) build -o bin/$$s ./services/$$s/cmd/$$s"; $(GO) build -o bin/$$s ./services/$$s/cmd/$$s || exit 1; done

# The JavaScript runtime module the actor-worker embeds (docs/actors.md,
# section 9): built before the binaries, which embed it.
JSRUNTIME := services/actorworker/jsruntime/dist/jsruntime.wasm
jsruntime:
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -ldflags=-s -o $(JSRUNTIME) ./libs/actorjs/cmd/jsruntime

# make run builds only what gnome serve needs: the JavaScript runtime it
# embeds and bin/gnome (every service runs inside it), not the per-service
# binaries make build adds.
gnome: jsruntime
	@mkdir -p bin
	$(GO) build -o bin/gnome ./services/gnome/cmd/gnome

run: gnome
	./bin/gnome serve

# Everything: formatting, vet, generated code, unit and integration tests
# (embedded NATS and store), the race detector on libs, end-to-end tests
# against the built binaries.
# The race detector runs over libs and the services whose tests run their
# handlers concurrently in process; the platform-wide tests (apitest, e2e)
# run without it, for time.
RACE_MODULES := libs services/edge services/export

# go test prints packages in the order given, so one slow package hides the
# others' results until it ends; gotestsum prints each package as it
# finishes, and the output of failed tests again at the end.
GOTESTSUM_VERSION := v1.13.0
GOTESTSUM := bin/gotestsum-$(GOTESTSUM_VERSION)
GOTEST := $(GOTESTSUM) --format pkgname-and-test-fails --format-hide-empty-pkg --

$(GOTESTSUM):
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin/.tools $(GO) install gotest.tools/gotestsum@$(GOTESTSUM_VERSION)
	mv bin/.tools/gotestsum $@

test: check build $(GOTESTSUM)
	$(GOTEST) $(TESTFLAGS) -race $(foreach m,$(RACE_MODULES),./$(m)/...)
	$(GOTEST) $(TESTFLAGS) $(foreach m,$(filter-out $(RACE_MODULES),$(MODULES)),./$(m)/...)
	@# The store suites again on the embedded store's PostgreSQL engine (about 30 s), where it is installed.
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		GNOME_TEST_STORE=postgres $(GOTEST) $(TESTFLAGS) ./libs/scoped/ ./libs/store/; \
	else echo "no PostgreSQL installed: libs/scoped and libs/store ran on SQLite only"; fi

check: generate-check
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run ./libs/internal/layers
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./libs/actorsdk/... ./libs/actorjs/... ./examples/...

fmt:
	gofmt -w $(MODULES)

generate:
	cd libs && $(GO) generate ./apierr ./bundle

generate-check:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd libs && \
	  $(GO) run ./apierr/gen ../schemas/errors.json "$$tmp/catalogue.go" && \
	  if ! cmp -s "$$tmp/catalogue.go" apierr/catalogue_gen.go; then \
	    echo "libs/apierr/catalogue_gen.go is out of date with schemas/errors.json: run make generate"; exit 1; fi
	@cmp -s schemas/manifest.schema.json libs/bundle/manifest.schema.json || \
	  { echo "libs/bundle/manifest.schema.json is out of date with schemas/manifest.schema.json: run make generate"; exit 1; }

EXAMPLES := $(patsubst examples/%/manifest.json,%,$(wildcard examples/*/manifest.json))

# Each example experiment as an uploadable ZIP: its Go actor (actor/)
# built for wasip1, packed with its manifest and page by examples/cmd/mkzip
# (Go only). A JavaScript actor (actor.js, no actor/) is packed as it is.
examples:
	@mkdir -p bin/examples
	@for e in $(EXAMPLES); do \
		echo "examples/$$e -> bin/examples/$$e.zip"; \
		if [ -d examples/$$e/actor ]; then \
			GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o bin/examples/$$e.wasm ./examples/$$e/actor || exit 1; \
			$(GO) run ./examples/cmd/mkzip -o bin/examples/$$e.zip -add actor.wasm=bin/examples/$$e.wasm examples/$$e || exit 1; \
		else \
			$(GO) run ./examples/cmd/mkzip -o bin/examples/$$e.zip examples/$$e || exit 1; \
		fi; \
	done

bench: build
	$(GO) run ./bench/cmd/gnome-bench $(BENCHFLAGS)

clean:
	rm -rf bin
