# ShopRec: every target installs what it needs first (uv into .venv, uv itself from PyPI).
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(ROOT)/.tools/bin/uv)

export SHOPREC_HOME ?= $(ROOT)/var
export AIRFLOW_HOME ?= $(SHOPREC_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PARALLELISM ?= 4
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL ?= 30
export BENTOML_HOME := $(SHOPREC_HOME)/bentoml
export BENTOML_DO_NOT_TRACK := True
export FEAST_USAGE := False
export TF_CPP_MIN_LOG_LEVEL := 2
export PATH := $(VENV)/bin:$(PATH)
PORT ?= 3000
PRESET ?= default
PYTEST_ARGS ?=

.PHONY: help install run pipeline serve test test-fast lint airflow feast-ui eval bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' Makefile | sed 's/:.*##/\t/'

$(UV):
	python3 -m pip install --quiet --target $(ROOT)/.tools uv

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python 3.11
	touch $@

install: $(VENV)/.installed  ## create .venv from uv.lock

data: install
	$(PY) -m shoprec.cli generate --preset $(PRESET) --if-empty

pipeline: data  ## generate data if needed, then run the shoprec_pipeline DAG to the end
	$(PY) -m shoprec.airflow_local run-dag shoprec_pipeline

serve: install  ## serve the last built bento on localhost:$(PORT)
	$(PY) -m serving.serve --port $(PORT)

run: pipeline  ## everything: install, generate, pipeline, then serve with an example request
	$(PY) -m serving.serve --port $(PORT) --demo

test: install  ## install, then the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install  ## unit tests only
	$(PY) -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .

airflow: install  ## airflow standalone with the DAGs; Ctrl-C stops every process it started
	$(PY) -m shoprec.airflow_local standalone

feast-ui: install  ## the Feast registry browser on localhost:8888
	$(PY) -m feature_repo.ui --port 8888 --apply

eval: install  ## recall evaluation: generated data, Amazon Beauty, MovieLens-100K (DATA=../shared/data)
	$(PY) benchmarks/eval_recall.py --data $(or $(DATA),$(ROOT)/../shared/data)

bench: install  ## benchmarks (figures as a table + one JSON line each)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:  ## remove generated state (keeps .venv)
	rm -rf $(SHOPREC_HOME)
