# Two commands for a newcomer on a fresh machine:
#   make up    — install what is missing, start PostgreSQL/RabbitMQ/OpenLDAP, migrate, start every
#                service and vendor simulator with demo data; runs in the foreground until Ctrl-C
#   make test  — everything the tests need, then the whole suite
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= $(shell command -v python3.11 || command -v python3)

# Type-checked with mypy (settings in pyproject.toml); libs/shared strictly, every service with the
# same settings.
TYPED_PACKAGES := gateway/src/soc_gateway services/auth/src/soc_auth services/tenant/src/soc_tenant \
	services/siem-ingest/src/soc_siem_ingest services/soar-ingest/src/soc_soar_ingest \
	services/itsm-ingest/src/soc_itsm_ingest services/threatintel/src/soc_threatintel

.PHONY: up test deps install stop status lint schemas bench backup restore k8s-scan chaos web client

install:
	bash scripts/deps.sh install

deps: install
	bash scripts/deps.sh start
	uv run --frozen python -m soc_shared.provision --db soc --vhost soc

up: deps web
	uv run --frozen python scripts/run_suite.py

test: install web
	bash scripts/deps.sh start
	uv run --frozen pytest $(PYTEST_ARGS)

stop:
	bash scripts/deps.sh stop

status:
	bash scripts/deps.sh status

lint:
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy --strict libs/shared/src/soc_shared
	uv run --frozen mypy $(TYPED_PACKAGES)

schemas:
	uv run --frozen python -m soc_shared.events

# The web console (web/dist, served by the gateway at /); rebuilt only when its sources changed.
web:
	bash scripts/build_web.sh

# The console's typed API client from the gateway's merged OpenAPI (web/src/api/schema.d.ts).
client:
	bash scripts/gen_client.sh

bench:
	@for b in bench/*_bench.py; do echo "== $$b"; uv run --frozen python $$b || exit 1; done

# Database dump + broker definitions into .local/backups/<UTC time>/ (or BACKUP_DIR=...).
backup:
	uv run --frozen python scripts/backup.py backup $(if $(BACKUP_DIR),--dir $(BACKUP_DIR))

# Into an empty database: make restore BACKUP_DIR=.local/backups/<time> [RESTORE_DB=soc_restored]
restore:
	uv run --frozen python scripts/backup.py restore --dir $(BACKUP_DIR) $(if $(RESTORE_DB),--db $(RESTORE_DB))

# checkov over the rendered Kubernetes manifests (downloads checkov into uv's tool cache once).
k8s-scan:
	mkdir -p .local/k8s
	for o in dev prod; do kubectl kustomize deploy/k8s/overlays/$$o > .local/k8s/$$o.yaml; done
	uvx --from checkov==3.3.30 checkov -d .local/k8s --framework kubernetes --compact --quiet

# Faults against a sandboxed suite (own PostgreSQL/RabbitMQ/processes); non-zero if anything is lost.
chaos: install
	uv run --frozen python scripts/chaos.py $(CHAOS_ARGS)
