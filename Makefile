# Two commands for a newcomer on a fresh machine:
#   make up    — install what is missing, start PostgreSQL/RabbitMQ/OpenLDAP, migrate, start every
#                service and vendor simulator with demo data; runs in the foreground until Ctrl-C
#   make test  — everything the tests need, then the whole suite
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: up test deps install stop status lint schemas bench

install:
	bash scripts/deps.sh install

deps: install
	bash scripts/deps.sh start
	uv run --frozen python -m soc_shared.provision --db soc --vhost soc

up: deps
	uv run --frozen python scripts/run_suite.py

test: install
	bash scripts/deps.sh start
	uv run --frozen pytest $(PYTEST_ARGS)

stop:
	bash scripts/deps.sh stop

status:
	bash scripts/deps.sh status

lint:
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .

schemas:
	uv run --frozen python -m soc_shared.events

bench:
	@for b in bench/*_bench.py; do echo "== $$b"; uv run --frozen python $$b || exit 1; done
