# Chorus. `make run` starts the five-daemon cluster; `make test` runs every test.
SERVER ?= 1
STAMP := node_modules/.chorus-installed
# Compiled only when a source file changed since the last build (tsc itself is incremental too).
BUILT := dist/.built
SOURCES := $(shell find src test web -name '*.ts' -o -name '*.tsx' -o -name '*.css' -o -name '*.html') tsconfig.json web/tsconfig.json

.PHONY: all install build lint test run run-netns stop client console sim bench clean

all: build

install: $(STAMP)

$(STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: $(BUILT)

$(BUILT): $(STAMP) $(SOURCES)
	npx tsc -p tsconfig.json
	npx tsc -p web/tsconfig.json
	npx esbuild web/src/main.tsx --bundle --format=esm --target=es2022 --jsx=automatic --jsx-import-source=preact --minify --sourcemap --outfile=dist/web/console.js --log-level=warning
	cp web/index.html dist/web/index.html
	@touch $@

lint: install
	npx eslint .

test: build lint
	npx mocha

# make run SERVERS=<n>: a cluster of n (3-9) instead of clusterconfig's; make run-netns: each server in its own network namespace (root).
run: build
	tools/cluster start $(if $(SERVERS),--servers $(SERVERS))

run-netns: build
	tools/cluster start --netns $(if $(SERVERS),--servers $(SERVERS))

stop: build
	tools/cluster stop

client: build
	tools/client --server $(SERVER)

# The web console of the running cluster in the foreground (make run starts one in the background).
console: build
	tools/console

# make sim SEED=<n> reproduces one run; make sim SEEDS=<k> runs seeds 1..k.
SEEDS ?= 100
sim: build
	tools/sim $(if $(SEED),--seed $(SEED),--seeds $(SEEDS))

# make bench: the benchmark suite on its own five-daemon cluster (QUICK=1 for a short run, kept apart from the full run's figures).
bench: build
	tools/bench --out $(if $(filter 1,$(QUICK)),bench-results-quick.json,bench-results.json)

clean:
	rm -rf dist
