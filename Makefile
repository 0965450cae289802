# taskfn: `make run` starts the platform locally; `make test` runs every check.
# Both build .venv first with Python 3.13 (the Lambda runtime), found on PATH or via pyenv.
PYTHON ?= $(shell for p in python3.13 /root/.pyenv/versions/3.13*/bin/python $(HOME)/.pyenv/versions/3.13*/bin/python; do "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && { command -v "$$p"; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test slow lint unit template build bench openapi fuzz clean chromium

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it or pass PYTHON=/path/to/python3.13"; exit 1; }
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 13), sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/taskfn local

# Two workers: each has its own moto server and local stacks (ports are chosen free).
# The checks marked `slow` (volume and long waits; none of them a security check) run in
# `make slow`, so that `make test` stays well under 15 minutes on two cores.
test: $(STAMP) lint chromium
	$(BIN)/pytest -n 2 -m "not slow"
	$(MAKE) template

slow: $(STAMP) chromium
	$(BIN)/pytest -n 2 -m slow

# The stream page's browser test drives Debian's Chromium (Playwright's own download is not
# used): installed with apt when missing (CI runs as root on Debian).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

lint: $(STAMP)
	$(BIN)/ruff check .

# The contract: openapi.json (and the docs Lambda's copy) from the handlers' own resolvers.
openapi: $(STAMP)
	$(BIN)/python -m taskfn.openapi

# The fuzzer alone, with more cases: `make fuzz FUZZ_CASES=50000`.
FUZZ_CASES ?= 20000
fuzz: $(STAMP)
	FUZZ_CASES=$(FUZZ_CASES) $(BIN)/pytest tests/e2e/test_fuzz.py

# The template checks: lint, then a real `sam build` (the taskfn layer from its requirements).
template: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam validate --lint --region $(AWS_DEFAULT_REGION)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam build --region $(AWS_DEFAULT_REGION)

# The benchmark suite (about 30 minutes): ratios against baselines measured in the same run,
# written to bench/results/latest.json and latest.md. `--quick` is a smoke test.
bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache
