# eapc-lightning: every target builds the environment it needs first (scripts/bootstrap.sh: uv sync
# of the pinned set in uv.lock into .venv).
SHELL := /bin/bash
PY := .venv/bin/python
EAPC := .venv/bin/eapc
# dataset for the training targets: synthetic (embedded default), mead, crema_d or folder
DATA ?= synthetic
ROOT ?=
SEED ?= 0
SEEDS ?= 0 1 2
JOBS ?= 2
RUNS ?= runs
# further `eapc pipeline` arguments, e.g. ARGS="--resume" or ARGS="--set trainer.max_epochs=3"
ARGS ?=
# real talking-face footage for eval-real-speech (voxceleb2/ and hdtf/ subfolders), and its checkpoint
FOOTAGE ?= ../shared/data
A2L ?=
# the experiment of train-vid2vid and paper (experiments/vid2vid_mead.yaml is the paper-scale GPU setting)
CONFIG ?= experiments/vid2vid.yaml
DATA_ARGS = --data $(DATA) $(if $(ROOT),--root $(ROOT)) --runs $(RUNS)
export WANDB_MODE ?= offline
export PYTHONHASHSEED := 0

.PHONY: help env lock test lint train-a2l sweep-ablation train-vid2vid paper demo eval-real-speech clean

help:
	@echo "make train-a2l      audio-to-landmark training on DATA=$(DATA) (synth -> prepare -> fit -> test -> report)"
	@echo "make train-vid2vid  landmark-to-video training on DATA=$(DATA)"
	@echo "make paper          the whole pipeline on DATA=$(DATA): a2l, vid2vid, fine-tuning on predicted landmarks, Table 1"
	@echo "make sweep-ablation the paper's Tables 2 and 3 over SEEDS=$(SEEDS)"
	@echo "make demo           speech + face photo -> talking-face mp4"
	@echo "make eval-real-speech  the a2l model on real footage in FOOTAGE=$(FOOTAGE) (A2L=checkpoint, default newest)"
	@echo "make test           lint + the test suite"

env:
	@bash scripts/bootstrap.sh

lint: env
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

test: lint
	$(PY) -m pytest -q --durations=15

train-a2l: env
	$(EAPC) pipeline a2l $(DATA_ARGS) --seed $(SEED) $(ARGS)

sweep-ablation: env
	$(EAPC) pipeline ablation $(DATA_ARGS) --seeds $(SEEDS) --jobs $(JOBS) $(ARGS)

train-vid2vid: env
	$(EAPC) pipeline vid2vid $(DATA_ARGS) --seed $(SEED) --config $(CONFIG) $(ARGS)

# a2l -> vid2vid -> vid2vid fine-tuned on the a2l's landmarks -> Table 1 of both (tables/paper/)
paper: env
	$(EAPC) pipeline paper $(DATA_ARGS) --seed $(SEED) --config $(CONFIG) $(ARGS)

demo: env
	$(EAPC) pipeline demo --runs $(RUNS) $(ARGS)

eval-real-speech: env
	$(EAPC) pipeline real-speech --footage $(FOOTAGE) --runs $(RUNS) $(if $(A2L),--a2l $(A2L)) $(ARGS)

# Re-resolve uv.lock after changing pyproject.toml; pinned versions that still fit are kept
# (move one with: bash scripts/uv.sh lock --upgrade-package NAME). The next target syncs .venv.
lock:
	bash scripts/uv.sh lock

clean:
	rm -rf .venv .pytest_cache .ruff_cache
