# Chorus. `make run` starts the five-daemon cluster; `make test` runs every test.
SERVER ?= 1
STAMP := node_modules/.chorus-installed
# Compiled only when a source file changed since the last build (tsc itself is incremental too).
BUILT := dist/.built
SOURCES := $(shell find src test -name '*.ts') tsconfig.json

.PHONY: all install build lint test run stop client sim bench clean

all: build

install: $(STAMP)

$(STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: $(BUILT)

$(BUILT): $(STAMP) $(SOURCES)
	npx tsc -p tsconfig.json
	@touch $@

lint: install
	npx eslint .

test: build lint
	npx mocha

run: build
	tools/cluster start

stop: build
	tools/cluster stop

client: build
	tools/client --server $(SERVER)

# make sim SEED=<n> reproduces one run; make sim SEEDS=<k> runs seeds 1..k.
SEEDS ?= 100
sim: build
	tools/sim $(if $(SEED),--seed $(SEED),--seeds $(SEEDS))

# make bench: the benchmark suite on its own five-daemon cluster (QUICK=1 for a short run, kept apart from the full run's figures).
bench: build
	tools/bench --out $(if $(filter 1,$(QUICK)),bench-results-quick.json,bench-results.json)

clean:
	rm -rf dist
