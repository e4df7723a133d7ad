# Debian packages for mxedge, built with nfpm (kept out of go.mod: `go run
# module@version` fetches it through the module proxy and caches it).
# Included by the top-level Makefile; also usable alone from the repo root:
#   make -f packaging/deb.mk deb-pkg-amd64 MXEDGE_BIN=/path/to/mxedge VERSION=0.1.0
# which packages a given binary without building it (the packaging test does).

GO             ?= go
BIN_DIR        ?= bin
VERSION        ?= $(shell cat VERSION 2>/dev/null || git describe --tags --always --dirty 2>/dev/null || echo 0.0.0)
DIST_DIR       ?= dist
DEB_ARCHES     ?= amd64 arm64
DEB_MAINTAINER ?= mxedge maintainers <mxedge@example.net>
NFPM           ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

# Timestamps in the package (nfpm) and the changelog date follow the last
# commit, so rebuilding a commit gives the same metadata.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
ifneq ($(SOURCE_DATE_EPOCH),)
export SOURCE_DATE_EPOCH
endif

# Debian version from VERSION: drop a leading "v"; a pre-release "1.2.0-rc1"
# becomes "1.2.0~rc1" (sorts before 1.2.0); git-describe's "1.2.0-3-gabc"
# becomes "1.2.0+3.gabc" (sorts after 1.2.0, and has no "-", which would make
# the package non-native); a version not starting with a digit ("dev")
# becomes "0~dev".
DEB_VERSION    ?= $(shell printf '%s\n' '$(VERSION)' | sed -e 's/^v//' \
	-e 's/-\(rc\|alpha\|beta\|pre\)/~\1/' -e 's/-/+/' -e 's/-/./g' -e 's/^[^0-9]/0~&/')

.PHONY: deb deb-config-check $(addprefix deb-,$(DEB_ARCHES)) $(addprefix deb-pkg-,$(DEB_ARCHES))

deb: $(addprefix deb-,$(DEB_ARCHES)) ## build .deb packages for amd64 and arm64 into dist/ (nfpm)

# The host's architecture is built with cgo, so its package signs EAP-TLS
# RSA keys through libcrypto (edge/internal/libcrypto, about three times
# cheaper than Go); the others are cross-built without, and sign in Go.
DEB_HOST_GOARCH ?= $(shell $(GO) env GOHOSTARCH)

# A dynamically linked binary gets Debian's hardening: PIE, full RELRO.
DEB_CGO_FLAGS  = -buildmode=pie -ldflags "-s -w -X main.version=$(VERSION) -extldflags '-Wl,-z,relro -Wl,-z,now'"
DEB_STATIC_FLAGS = -ldflags "-s -w -X main.version=$(VERSION)"

# deb-ARCH: build the binary for ARCH, then package it.
$(addprefix deb-,$(DEB_ARCHES)): deb-%:
	GOOS=linux GOARCH=$* CGO_ENABLED=$(if $(filter $*,$(DEB_HOST_GOARCH)),1,0) $(GO) build -trimpath \
		$(if $(filter $*,$(DEB_HOST_GOARCH)),$(DEB_CGO_FLAGS),$(DEB_STATIC_FLAGS)) \
		-o $(BIN_DIR)/linux_$*/mxedge ./cmd/mxedge
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) deb-pkg-$* \
		MXEDGE_BIN=$(BIN_DIR)/linux_$*/mxedge VERSION=$(VERSION) \
		DEB_VERSION=$(DEB_VERSION) DIST_DIR=$(DIST_DIR) BIN_DIR=$(BIN_DIR) GO=$(GO)

# deb-pkg-ARCH: package MXEDGE_BIN (default: the deb-ARCH build output).
# The changelog and man page are gzipped per arch so that `make -j deb` does not race.
$(addprefix deb-pkg-,$(DEB_ARCHES)): deb-pkg-%: deb-config-check
	@test -x "$(or $(MXEDGE_BIN),$(BIN_DIR)/linux_$*/mxedge)" || \
		{ echo "deb: no binary at $(or $(MXEDGE_BIN),$(BIN_DIR)/linux_$*/mxedge)" >&2; exit 1; }
	@mkdir -p $(DIST_DIR) $(BIN_DIR)/deb/$*
	packaging/debian-changelog.sh '$(DEB_VERSION)' '$(DEB_MAINTAINER)' CHANGELOG.md \
		| gzip -9n > $(BIN_DIR)/deb/$*/changelog.gz
	gzip -9n < packaging/deb/mxedge.1 > $(BIN_DIR)/deb/$*/mxedge.1.gz
	DEB_ARCH=$* DEB_VERSION='$(DEB_VERSION)' DEB_MAINTAINER='$(DEB_MAINTAINER)' \
	MXEDGE_BIN='$(or $(MXEDGE_BIN),$(BIN_DIR)/linux_$*/mxedge)' \
	DEB_CHANGELOG='$(BIN_DIR)/deb/$*/changelog.gz' DEB_MANPAGE='$(BIN_DIR)/deb/$*/mxedge.1.gz' \
		$(NFPM) pkg --packager deb --config packaging/nfpm.yaml --target $(DIST_DIR)/

deb-config-check:
	@test -f config.example.yaml || \
		{ echo "deb: config.example.yaml is missing at the repo root; it is shipped as /etc/mxedge/config.yaml" >&2; exit 1; }

# deb-version prints the Debian version that VERSION maps to.
.PHONY: deb-version
deb-version:
	@echo '$(DEB_VERSION)'
