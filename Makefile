# mxedge — on-premises edge for a cloud NAC.
# `make` lists the targets. The two that matter: `make demo` and `make test`.

GO       ?= go
VERSION  ?= $(shell cat VERSION 2>/dev/null || git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
BIN_DIR  ?= bin
LDFLAGS  := -s -w -X main.version=$(VERSION)
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"
# cgo, when this machine compiles C, lets the local EAP-TLS server sign
# with RSA keys through OpenSSL's libcrypto (edge/internal/libcrypto, three
# times cheaper than Go); without a C compiler everything builds in pure Go.
ifeq ($(origin CGO_ENABLED),undefined)
CGO_ENABLED := $(shell printf '\043include <dlfcn.h>\nint main(void){return 0;}\n' | $${CC:-gcc} -x c -o /dev/null - >/dev/null 2>&1 && echo 1 || echo 0)
endif
export CGO_ENABLED

.DEFAULT_GOAL := help

.PHONY: help
help: ## list targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-12s %s\n",$$1,$$2}' $(MAKEFILE_LIST)

# Debian packages the demo and the tests drive (real peers, not mocks), and
# what the race detector and the packaging tests need.
DEMO_PKGS := freeradius-utils eapoltest
TEST_PKGS := $(DEMO_PKGS) freeradius radsecproxy openssl gcc libc6-dev lintian dpkg-dev systemd chromium

define install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

.PHONY: deps deps-demo
deps: ## install the Debian packages the tests drive, if missing
	$(call install_missing,$(TEST_PKGS))
deps-demo:
	$(call install_missing,$(DEMO_PKGS))

.PHONY: build
build: ## build bin/mxedge, bin/mxcloud and bin/mxload for this machine
	@mkdir -p $(BIN_DIR)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN_DIR)/ ./cmd/...

.PHONY: test
test: deps build ## unit, fuzz-seed, race and real-peer integration tests (installs the Debian peers if missing)
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -parallel 8 -timeout 20m ./cmd/mxedge/ ./...

.PHONY: test-short
test-short: ## unit tests only, no real peers
	$(GO) test -short -count=1 ./...

.PHONY: bench
bench: deps build ## benchmarks: Go benchmarks plus mxedge vs radsecproxy through FreeRADIUS
	$(GO) test -run '^$$' -bench . -benchtime 2s ./proxy/... ./edge/... ./cache/...
	$(GO) test -run '^$$' -bench 'LocalEAPTLS' -benchtime 2000x ./cmd/mxedge/
	$(GO) test -run '^$$' -bench 'LocalMAB' -benchtime 100000x ./cmd/mxedge/
	$(GO) test -run '^$$' -bench 'Flood' -benchtime 1x ./cmd/mxedge/
	$(GO) test -run '^$$' -bench 'EAPAdmission' -benchtime 1x ./cmd/mxedge/
	$(GO) test -run '^$$' -bench 'WANCut' -benchtime 1x ./cmd/mxedge/
	$(GO) test -run '^$$' -bench 'RadSecListenerMAB' -benchtime 30000x ./cmd/mxedge/
	$(BIN_DIR)/mxload compare

# Linters run through the Go toolchain at pinned versions, so every machine
# and CI run the same checks without installing anything by hand.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: lint
lint: ## go vet, gofmt, staticcheck and govulncheck (pinned; govulncheck skips, saying so, without its database)
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) run $(STATICCHECK) ./...
	GO=$(GO) .ci/govulncheck

.PHONY: demo
demo: deps-demo build ## lab cloud on loopback, the edge in front of it, traffic through it
	$(BIN_DIR)/mxcloud demo --mxedge $(BIN_DIR)/mxedge

.PHONY: fuzz
FUZZTIME ?= 20s
fuzz: ## run each fuzz target for FUZZTIME (20s), two at a time; a crasher is kept in testdata/fuzz as a regression seed
	GO=$(GO) FUZZTIME=$(FUZZTIME) .ci/fuzz

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN_DIR) dist

-include packaging/deb.mk
