# The two commands a new user runs (see README.md):
#   make demo   build the sample company's warehouse and render its 2026Q3 quarterly review
#   make test   run the test suite (pytest: tests/ and the notebooks through nbval)
# Both install what they need first: uv (bootstrapped with pip if missing), then the locked
# Python packages (uv sync --frozen), compiled to bytecode once.

SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
QUARTER ?= 2026Q3

.PHONY: setup demo test lab clean debian-packages

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode

demo: setup
	$(UV) run finops demo
	$(UV) run finops report quarterly --quarter $(QUARTER) --out reports
	@echo "Open reports/quarterly-review-$(QUARTER).html in a browser (it works offline)."

# Azure connector tests run Azurite (Microsoft's Blob Storage emulator, an npm package) on 127.0.0.1;
# it is installed into .tools/ once. The version matches tests/servers_azurite.py.
AZURITE_VERSION := 3.37.0
AZURITE := .tools/azurite/node_modules/.bin/azurite-blob

$(AZURITE):
	npm install --prefix .tools/azurite --no-audit --no-fund azurite@$(AZURITE_VERSION)

# Debian packages the tests use: Chromium (the report opens offline in headless Chromium), the
# PostgreSQL server binaries (the LiteLLM connector is tested against a throw-away Postgres) and
# Java 17 (pyspark runs Spark in local mode for the engine = "spark" tests).
DEBIAN_PACKAGES := $(if $(shell command -v chromium),,chromium) $(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql) \
	$(if $(shell command -v java),,openjdk-17-jre-headless)

debian-packages:
	@if [ -n "$(strip $(DEBIAN_PACKAGES))" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	  else echo "missing $(DEBIAN_PACKAGES) and no root: their tests will be skipped"; exit 0; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	fi

test: setup $(AZURITE) debian-packages
	$(UV) run pytest

# The notebooks read $FINOPS_WAREHOUSE and $FINOPS_CONFIG; point them at this project's files.
# Jupyter refuses to run as root (a container, say) unless told to.
lab: setup
	@test -f data/warehouse.duckdb || $(UV) run finops demo
	FINOPS_WAREHOUSE=$${FINOPS_WAREHOUSE:-$(CURDIR)/data/warehouse.duckdb} \
	FINOPS_CONFIG=$${FINOPS_CONFIG:-$(CURDIR)/finops.toml} \
	$(UV) run jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean:
	rm -rf data/sample data/warehouse.duckdb data/warehouse.duckdb.wal reports .pytest_cache
