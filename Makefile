# authz — the two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/authz
STATICCHECK_VERSION := v0.8.2
STATICCHECK := bin/staticcheck-$(STATICCHECK_VERSION)
# Count-based in `make test`: a duration-based -fuzztime can end in a spurious "context deadline
# exceeded" failure on Go 1.26 (go.dev/issue/75804).
FUZZTIME ?= 10000x
# Packages and their native fuzzers (name:package); each runs for FUZZTIME in `make test`.
FUZZERS := \
	FuzzParseHeaders:./clientauth \
	FuzzVerifyAttestation:./clientauth \
	FuzzVerifyPoP:./clientauth \
	FuzzCheck:./internal/strictjson \
	FuzzVerify:./dpop \
	FuzzExtractHeader:./dpop \
	FuzzRenderConsent:./templates \
	FuzzHandlerAttest:./devattester \
	FuzzAttesterInput:./server \
	FuzzTokenEndpoint:./reliability \
	FuzzVerify:./resource \
	FuzzRequestHeaders:./resource

SOAK_DURATION ?= 60s

.PHONY: run build test test-go lint fuzz fuzz-short bench soak clean

# VERSION names the build in `authz version` (the git commit, "-dirty" with local changes).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

build: ## build bin/authz
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/authz

# run: authz on 127.0.0.1:8080 with config.example.yaml and an embedded SQLite file (authz.db),
# plus the development attester on 127.0.0.1:8081 (its key is generated in .dev/ on first run).
run: build
	@mkdir -p .dev
	@$(BIN) dev-attester --generate --key .dev/attester-key.json --listen 127.0.0.1:8081 & \
	  attester=$$!; trap 'kill $$attester 2>/dev/null' EXIT INT TERM; \
	  for i in $$(seq 50); do \
	    (exec 3<>/dev/tcp/127.0.0.1/8081) 2>/dev/null && break; sleep 0.1; \
	  done; sleep 0.3; \
	  if ! kill -0 $$attester 2>/dev/null; then echo "make run: the dev attester did not start (is 127.0.0.1:8081 in use?)" >&2; exit 1; fi; \
	  $(BIN) serve --config config.example.yaml

# test: every test — vet, staticcheck, unit, end-to-end (real server on loopback, real SQLite),
# PostgreSQL (the machine's server, started when stopped), and a short run of every fuzzer.
test: lint test-go fuzz-short

test-go:
	@scripts/ensure-chromium.sh >/dev/null || { if [ "$${CI:-}" = true ]; then echo "Chromium is required in CI (scripts/ensure-chromium.sh)" >&2; exit 1; fi; }; \
	  dsn=$$(scripts/ensure-postgres.sh) || { if [ "$${CI:-}" = true ]; then echo "PostgreSQL is required in CI" >&2; exit 1; fi; dsn=""; }; \
	  AUTHZ_TEST_POSTGRES_DSN=$${AUTHZ_TEST_POSTGRES_DSN:-$$dsn} $(GO) test -race -count=1 -timeout 8m ./...

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv bin/staticcheck $(STATICCHECK)

fuzz-short:
	@set -e; for f in $(FUZZERS); do name=$${f%%:*}; pkg=$${f#*:}; \
	  echo "fuzz $$name ($$pkg): $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg; done

# fuzz: the same fuzzers, longer (FUZZTIME=10m make fuzz).
fuzz: FUZZTIME = 2m
fuzz: fuzz-short

# bench: starts authz (SQLite, then PostgreSQL when reachable, then two replicas on PostgreSQL)
# and prints req/s, latency percentiles, server CPU per 1000 tokens, peak RSS and the crypto
# bound for each scenario (docs/performance.md). It never fails on speed.
bench: build
	$(GO) run ./cmd/authz-bench --authz $(BIN) $(BENCH_FLAGS)

# soak: mixed good and hostile traffic against bin/authz for SOAK_DURATION (not part of make test);
# fails on any 5xx, heap (anonymous RSS) growth, a token without exactly one accepted audit record, or an accepted replay.
soak: build
	$(GO) run ./cmd/authz-soak --bin $(BIN) --duration $(SOAK_DURATION)

clean:
	rm -rf bin .dev authz.db authz.db-shm authz.db-wal
