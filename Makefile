# Portcullis — see README.md. `make run` starts a gateway, `make test` tests it.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/portcullis-gw/portcullis/core.Version=$(VERSION)
CMDS    := portcullis portcullis-web portcullis-link portcullis-client

.PHONY: build run test test-short fuzz bench lint check-units selinux clean

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# Starts the core and the front on https://127.0.0.1:8443 with data in ./var/
# (the core makes ./var and its directories with the modes it needs).
run: build
	./$(BIN)/portcullis serve --config deploy/dev.toml --web-binary $(BIN)/portcullis-web \
		$(if $(filter 0,$(shell id -u)),,--no-firewall)

# Everything: unit, integration, process and system tests, plus a short run
# of every fuzz target. CI runs this as root (see .ci/run) with
# PORTCULLIS_REQUIRE_SYSTEM=1: a missing prerequisite, or any skipped test,
# fails (skipguard prints the failures, the skips with their reasons and a count).
test: lint
	GO=$(GO) $(GO) run ./internal/testenv/skipguard -count=1 -timeout 20m ./...
	./scripts/fuzz-smoke.sh 10s

test-short:
	$(GO) test -short -count=1 ./...

# Longer fuzzing: every target for 10 minutes (over three hours in all, one
# target at a time); FUZZJOBS=2 runs two targets at once with one worker each,
# FUZZTIME=1m a shorter pass. See scripts/fuzz-smoke.sh.
FUZZTIME ?= 10m
fuzz:
	./scripts/fuzz-smoke.sh $(FUZZTIME)

# Decoder micro-benchmark, front vs reverse proxy and its TLS-relay floor, and (as root: network
# namespaces and nftables) approvals end to end, approval to first ping
# through an OpenVPN tunnel, and bbolt against a cluster on etcd (approvals/s,
# approval -> port-open latency, across gateways). See README "Benchmarks".
bench:
	./scripts/bench-deps.sh
	$(GO) test -run '^$$' -bench . -benchtime 1s ./api/
	$(GO) run ./internal/benchfront
	@if [ "$$(id -u)" = 0 ]; then GO=$(GO) $(GO) run ./internal/benchapprove; \
	else echo "benchapprove: needs root (network namespaces, nftables): not run"; fi
	@if [ "$$(id -u)" = 0 ]; then GO=$(GO) $(GO) run ./internal/benchscale; \
	else echo "benchscale: needs root (network namespaces, nftables, the real core): not run"; fi
	@if [ "$$(id -u)" = 0 ]; then GO=$(GO) $(GO) run ./internal/benchtunnel; \
	else echo "benchtunnel: needs root (network namespaces, nftables, OpenVPN workers): not run"; fi
	@if [ "$$(id -u)" = 0 ]; then GO=$(GO) $(GO) test -count=1 -run '^$$' -bench Cluster -benchtime 1x ./internal/benchcluster/; \
	else echo "benchcluster: needs root (network namespaces, nftables) and etcd-server: not run"; fi

# systemd-analyze security --offline=true for each unit in deploy/, failing
# above its goal (web 1.5, core 3.0, link 2.5); see docs/systemd.md.
check-units:
	./scripts/check-units.sh

# The SELinux policy modules, built with the reference policy's devel
# Makefile into bin/selinux (docs/selinux.md).
selinux:
	$(MAKE) -C selinux OUT=$(abspath $(BIN))/selinux

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
