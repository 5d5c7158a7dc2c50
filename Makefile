# Two commands from a fresh clone: `make run` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgres://root@127.0.0.1:5432/stayy
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
export DJANGO_SETTINGS_MODULE := config.settings

.PHONY: install run test test-postgres test-sqlite lint typecheck clean
.PHONY: bench bench-deps bench-sync bench-http bench-give-way bench-api bench-scheduler bench-many-jobs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Dev server on 127.0.0.1:8000 with embedded jobs, on the SQLite default.
run: install
	DJANGO_DEBUG=1 $(BIN)/python manage.py migrate --no-input
	DJANGO_DEBUG=1 $(BIN)/python manage.py ensure_dev_admin
	DJANGO_DEBUG=1 JOB_ENABLE=1 $(BIN)/python manage.py runserver 127.0.0.1:8000

# The whole suite on PostgreSQL + Redis, then the SQLite-default pass.
test: install test-postgres test-sqlite

test-postgres: install
	DJANGO_DEBUG=1 DATABASE_URL=$(PG_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/pytest -m "not sqlite" --timeout=300 --durations=25 $(PYTEST_ARGS)

test-sqlite: install
	DJANGO_DEBUG=1 DATABASE_URL= REDIS_URL= $(BIN)/pytest -m sqlite --timeout=300 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# scripts/ is no package: mypy reads each of its files as a top-level module.
typecheck: install
	DJANGO_DEBUG=1 $(BIN)/mypy config stayy users upstream_demo bench harness scripts gunicorn.conf.py

# Benchmarks (not tests; bench/README.md): PostgreSQL database stayy_bench, Redis db 15.
# Each prints a results block; pass options with BENCH_ARGS="--users 10000".
bench-deps:
	command -v wrk >/dev/null && command -v hey >/dev/null || apt-get install -y wrk hey

bench-sync: install
	$(BIN)/python -m bench.sync $(BENCH_ARGS)

bench-http: install
	$(BIN)/python -m bench.http_jobs $(BENCH_ARGS)

bench-give-way: install
	$(BIN)/python -m bench.give_way $(BENCH_ARGS)

bench-api: install
	$(BIN)/python -m bench.api $(BENCH_ARGS)

bench-scheduler: install
	$(BIN)/python -m bench.scheduler $(BENCH_ARGS)

bench-many-jobs: install
	$(BIN)/python -m bench.many_jobs $(BENCH_ARGS)

bench: bench-deps bench-sync bench-http bench-give-way bench-api bench-scheduler bench-many-jobs

clean:
	rm -rf $(VENV) .cache staticfiles db.sqlite3* test-db.sqlite3*
